"""Prices from litellm's local table: the cost of a call, and an estimate of the next prompt's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._litellm import litellm
from .types import Usage

Prices = tuple[float, float]  # USD per input token, USD per output token


def cost_of(model: str, usage: Usage, declared: Prices | None = None) -> tuple[float, bool]:
    """(cost in USD, known?) of a call: at the spec's declared price, else litellm's; a model
    missing from both costs 0, unknown."""
    if declared is not None:
        return usage.prompt_tokens * declared[0] + usage.completion_tokens * declared[1], True
    try:
        prompt, completion = litellm().cost_per_token(
            model=model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
        )
    except (
        Exception
    ):  # litellm raises several types for an unmapped model (ModelNotMappedError, ...)
        return 0.0, False
    return float(prompt) + float(completion), True


def estimate_prompt(
    model: str, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]
) -> tuple[int, float]:
    """(tokens, USD) the prompt of the next call will cost before any answer; 0 USD if unpriced."""
    module = litellm()
    try:
        tokens = int(
            module.token_counter(model=model, messages=list(messages), tools=list(tools) or None)
        )
    except Exception:  # a message shape the counter cannot read must not block the call
        return 0, 0.0
    try:
        price = module.get_model_info(model).get("input_cost_per_token") or 0.0
    except Exception:
        price = 0.0
    return tokens, tokens * float(price)


def prices_of(model: str, declared: Prices | None = None) -> Prices | None:
    """USD per input and per output token: the spec's declared price, else litellm's, else None."""
    if declared is not None:
        return declared
    try:
        info = litellm().get_model_info(model)
    except Exception:  # litellm raises several types for an unmapped model
        return None
    if info.get("input_cost_per_token") is None:
        return None
    return float(info["input_cost_per_token"]), float(info.get("output_cost_per_token") or 0.0)


def count_prompt(
    model: str, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]
) -> int:
    """Tokens of the next prompt as litellm counts them (0 when it cannot read the shape)."""
    return estimate_prompt(model, messages, tools)[0]
