"""Embedding calls through litellm, for `memory.embedding: litellm:<model>`."""

from __future__ import annotations

import os

from codexflow.errors import ProviderError
from codexflow.providers._litellm import litellm


def embed(
    model: str, texts: list[str], api_base: str | None = None, api_key_env: str | None = None
) -> list[list[float]]:
    """One vector per text, in order; a provider failure is a ProviderError that names it."""
    kwargs: dict[str, object] = {}
    if api_base:
        kwargs["api_base"] = api_base
    if api_key_env:
        if not os.environ.get(api_key_env):
            raise ProviderError(
                f"embedding model {model}: its API key variable {api_key_env} is not set"
            )
        kwargs["api_key"] = os.environ[api_key_env]
    try:
        response = litellm().embedding(model=model, input=texts, **kwargs)
    except Exception as exc:  # litellm raises many types; the user needs the message
        raise ProviderError(f"embedding model {model}: {type(exc).__name__}: {exc}") from None
    rows = sorted(response.data, key=lambda row: row["index"])
    return [list(row["embedding"]) for row in rows]
