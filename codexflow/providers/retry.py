"""Which failures are worth another attempt, and how long to wait before it (Retry-After, backoff)."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from ._litellm import litellm

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504, 529})
MAX_BACKOFF = 60.0  # seconds: one exponential step past this is no longer "backing off"
MAX_RETRY_AFTER = 300.0  # seconds: a server asking for longer is treated as down

Verdict = Literal["transient", "next_model", "fatal"]


def classify(exc: BaseException) -> Verdict:
    """transient: retry the same model; next_model: no retry, but a fallback may do; fatal: stop.

    Auth, missing model and context-window errors belong to one model (another provider, key or
    window may do), while any other 4xx means the request itself is wrong everywhere.
    """
    module = litellm()
    if isinstance(exc, module.ContextWindowExceededError):
        return "next_model"
    if isinstance(exc, module.Timeout | module.APIConnectionError | module.RateLimitError):
        return "transient"
    if isinstance(
        exc, module.ServiceUnavailableError | module.InternalServerError | module.BadGatewayError
    ):
        return "transient"
    status = status_of(exc)
    if status in TRANSIENT_STATUS:
        return "transient"
    if status in (401, 403, 404):
        return "next_model"
    return "fatal"


def status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def response_headers(exc: BaseException) -> Mapping[str, str]:
    """The HTTP headers of the failed response.

    litellm attaches the real ones as `litellm_response_headers`; `exc.response` is a response
    litellm builds itself, whose headers are empty (seen with litellm 1.106.2).
    """
    for candidate in (
        getattr(exc, "litellm_response_headers", None),
        getattr(getattr(exc, "response", None), "headers", None),
        getattr(exc, "headers", None),
    ):
        if candidate:
            return {str(k).lower(): str(v) for k, v in dict(candidate).items()}
    return {}


def retry_after(exc: BaseException, *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms`, or `Retry-After` as seconds or a date)."""
    headers = response_headers(exc)
    if "retry-after-ms" in headers:
        seconds = _float(headers["retry-after-ms"])
        if seconds is not None:
            return min(max(seconds / 1000.0, 0.0), MAX_RETRY_AFTER)
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _float(value)
    if seconds is None:
        seconds = _seconds_until(value, time.time() if now is None else now)
    return None if seconds is None else min(max(seconds, 0.0), MAX_RETRY_AFTER)


def backoff(attempt: int, base: float, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff: uniform in [0, base * 2**attempt], capped (attempt from 0)."""
    ceiling = min(base * (2**attempt), MAX_BACKOFF)
    return (rng or random).uniform(0.0, ceiling)


def _float(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None


def _seconds_until(http_date: str, now: float) -> float | None:
    try:
        when: Any = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - datetime.fromtimestamp(now, UTC)).total_seconds()
