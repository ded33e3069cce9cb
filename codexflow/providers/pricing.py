"""Prices from litellm's local table: the cost of a call, and an estimate of the next prompt's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._litellm import litellm
from .types import Usage


def cost_of(model: str, usage: Usage) -> tuple[float, bool]:
    """(cost in USD, known?) of a call; a model missing from the price table costs 0, unknown."""
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
