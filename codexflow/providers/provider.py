"""Provider.complete: one model call with retries, Retry-After, circuit breakers, fallbacks,
budget checks, cost accounting and record/replay — the single retry layer of codexflow."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ProviderError
from ._litellm import REPLAY, SCRIPTED, litellm
from .breaker import Breakers
from .cassette import Cassette, Exchange, redact, request_key, secret_values
from .ledger import Ledger, Reservation
from .offline import register_source, source_url
from .pricing import Prices, cost_of, count_prompt, prices_of
from .rate import RateLimits
from .retry import backoff, classify, retry_after, status_of
from .scripted import Script
from .types import ChatRequest, ChatResponse, Mode, ModelRoute, ToolCall, Usage

# response_format types of the OpenAI protocol; no JSON Schema uses these as its "type".
_OPENAI_FORMATS = frozenset({"json_schema", "json_object", "text"})
# Sent as the key to a server of the spec's own (`api_base`) that was given no key variable.
NO_KEY = "no-key-needed"


@dataclass
class _Outcome:
    """What happened on one model of the route, for the final error message."""

    model: str
    attempts: int = 0
    error: str = ""


# The key variable litellm reads for common hosted providers (model prefix -> variable). A
# call without it fails as a 500 after every retry; checking first fails at once and says
# what to set. Providers not listed are left to the call itself.
HOSTED_KEYS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "groq": "GROQ_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "xai": "XAI_API_KEY",
    "cohere": "COHERE_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "together_ai": "TOGETHERAI_API_KEY",
    "fireworks_ai": "FIREWORKS_AI_API_KEY",
}


class Provider:
    """Reaches models for one run. Thread-safe: agents of a run may call it concurrently."""

    def __init__(
        self,
        *,
        ledger: Ledger | None = None,
        cassette: Cassette | None = None,
        mode: Mode = "live",
        breakers: Breakers | None = None,
        script: Script | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        rpm: Mapping[str, int] | None = None,
        rpm_window: float = 60.0,
        prices: Mapping[str, Prices] | None = None,
    ) -> None:
        """`rpm` limits the requests started per provider prefix (`{"openai": 60}`) in any
        `rpm_window` seconds (a minute; shorter in tests); a request waits for a free slot.
        `prices` are the spec's declared prices per provider prefix (USD per input and per
        output token), for models litellm's table does not price."""
        if mode in ("record", "replay") and cassette is None:
            raise ValueError(f"mode {mode!r} needs a cassette")
        self.ledger = ledger if ledger is not None else Ledger()
        self.cassette = cassette
        self.mode = mode
        self.breakers = breakers if breakers is not None else Breakers()
        self.script = script
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.rate_limits = RateLimits(rpm, rpm_window)
        self.prices = dict(prices or {})
        # Ids under which the offline handlers find this provider's script and cassette.
        self._script_id = register_source(script) if script is not None else None
        self._cassette_id = (
            register_source(cassette) if cassette is not None and mode == "replay" else None
        )

    def complete(self, route: ModelRoute, request: ChatRequest, *, step: str) -> ChatResponse:
        """Ask the route's models in order until one answers; charge the ledger; record if asked."""
        models = self._models_to_try(route, request, step)
        outcomes: list[_Outcome] = []
        sent = 0
        for model in models:
            reservation = self._reserve(route, request, step, model)
            max_tokens = reservation.completion_tokens if reservation else route.max_tokens
            try:
                outcome = _Outcome(model)
                outcomes.append(outcome)
                raw = self._try_model(route, request, step, model, outcome, max_tokens)
                sent += outcome.attempts
                if raw is not None:
                    return self._finish(route, request, step, model, raw, attempts=sent)
            finally:
                if reservation is not None:  # what the call did not use is free again
                    self.ledger.release(reservation)
        details = "; ".join(f"{o.model}: {o.error}" for o in outcomes)
        raise ProviderError(f"step '{step}': no model answered ({details})")

    def _reserve(
        self, route: ModelRoute, request: ChatRequest, step: str, model: str
    ) -> Reservation | None:
        """Hold the worst case of this call against the budget before it starts (None: no
        budget). Raises BudgetExceeded when the call could pass a limit."""
        if not self.ledger.limited:
            return None
        return self.ledger.reserve(
            step,
            prompt_tokens=count_prompt(model, request.messages, request.tools),
            max_completion=route.max_tokens,
            prices=self.prices_for(model),
        )

    def declared_price(self, model: str) -> Prices | None:
        if model.startswith(f"{SCRIPTED}/"):
            return 0.0, 0.0  # scripted answers cost nothing, and that is known
        return self.prices.get(model.split("/", 1)[0]) if "/" in model else None

    def prices_for(self, model: str) -> Prices | None:
        """USD per input and output token of `model`, or None when nobody knows them."""
        return prices_of(model, self.declared_price(model))

    def _models_to_try(self, route: ModelRoute, request: ChatRequest, step: str) -> tuple[str, ...]:
        if self.mode != "replay":
            return route.models
        assert self.cassette is not None
        recorded = tuple(m for m in route.models if self.cassette.has(self._key(route, request, m)))
        if not recorded:
            raise ProviderError(
                f"no recorded exchange for step '{step}' (model {route.model}); the prompt or "
                f"parameters changed since {self.cassette.path} was recorded — re-record with --record"
            )
        return recorded

    def _try_model(
        self,
        route: ModelRoute,
        request: ChatRequest,
        step: str,
        model: str,
        outcome: _Outcome,
        max_tokens: int | None = None,
    ) -> Any | None:
        """The raw litellm response, or None once this model is exhausted, skipped or refused."""
        if self._needs_key(route, model) and not os.environ.get(route.api_key_env or ""):
            outcome.error = f"its API key variable {route.api_key_env} is not set"
            return None
        missing = self._missing_credentials(route, model)
        if missing:
            # litellm would report this as a 500 and every retry would wait for nothing.
            outcome.error = (
                f"{', '.join(missing)} not set (set it, or run offline with --replay or --script)"
            )
            return None
        breaker = self.breakers.get(model)
        for attempt in range(route.retries + 1):
            if not breaker.allow():
                outcome.error += f"{'; ' if outcome.error else ''}circuit open, {breaker.remaining_cooldown():.1f}s of cooldown left"
                return None
            outcome.attempts += 1
            try:
                response = self._call(route, request, step, model, max_tokens)
            except Exception as exc:
                verdict = classify(exc)
                outcome.error = (
                    f"{outcome.attempts} attempt(s), last: {_describe(exc, route.api_base, model)}"
                )
                if verdict != "transient":
                    breaker.record_success()  # it answered: the provider is up, the request is not
                    if verdict == "fatal":
                        raise ProviderError(
                            f"step '{step}': {model} refused the request: "
                            f"{_describe(exc, route.api_base, model)}"
                        ) from exc
                    return None
                breaker.record_failure()
                if attempt < route.retries:
                    wait = retry_after(exc)
                    self._sleep(
                        wait if wait is not None else backoff(attempt, route.retry_delay, self._rng)
                    )
                continue
            breaker.record_success()
            return response
        return None

    def _call(
        self,
        route: ModelRoute,
        request: ChatRequest,
        step: str,
        model: str,
        max_tokens: int | None = None,
    ) -> Any:
        kwargs: dict[str, Any] = {
            "messages": list(request.messages),
            "timeout": route.timeout,
            # Ours is the only retry layer: litellm's retries (and the OpenAI SDK's 2 default
            # ones) would multiply with it.
            "num_retries": 0,
            "max_retries": 0,
        }
        if request.tools:
            kwargs["tools"] = list(request.tools)
        if request.response_format is not None:
            kwargs["response_format"] = _response_format(request.response_format)
        if route.temperature is not None:
            kwargs["temperature"] = route.temperature
        if max_tokens is not None:  # the route's, or what the budget has left for this call
            kwargs["max_tokens"] = max_tokens
        if self.mode == "replay":
            key = self._key(route, request, model)
            kwargs.update(
                model=f"{REPLAY}/{model}", api_base=source_url(self._cassette_id or "", step, key)
            )
        elif model.startswith(f"{SCRIPTED}/"):
            kwargs.update(model=model, api_base=source_url(self._script_id or "", step))
        else:
            kwargs["model"] = model
            if route.api_base:
                kwargs["api_base"] = route.api_base
            if route.api_key_env:
                kwargs["api_key"] = os.environ[route.api_key_env]
            elif route.api_base and not os.environ.get(HOSTED_KEYS.get(_prefix(model), "")):
                # A local server needs no key, but the OpenAI SDK refuses to send a request
                # without one ("Missing credentials"): give it a placeholder.
                kwargs["api_key"] = NO_KEY
        # The first call imports litellm (seconds): that is not part of the request's window.
        completion = litellm().completion
        if self.rate_limits and self._needs_network(model):
            self.rate_limits.acquire(model)  # every attempt is a request the provider counts
        return completion(**kwargs)

    def _finish(
        self,
        route: ModelRoute,
        request: ChatRequest,
        step: str,
        model: str,
        raw: Any,
        *,
        attempts: int,
    ) -> ChatResponse:
        message = raw.choices[0].message
        # A key the model echoes would otherwise reach outputs, the cache, the run records and
        # the next prompt (and a replay, whose cassette holds it redacted, would then miss).
        secrets = _secrets(route)
        calls = [
            ToolCall(
                id=str(c.id),
                name=str(c.function.name),
                arguments=redact(str(c.function.arguments or ""), secrets),
            )
            for c in (getattr(message, "tool_calls", None) or [])
        ]
        raw_usage = getattr(raw, "usage", None)
        usage = Usage(
            prompt_tokens=int(getattr(raw_usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(raw_usage, "completion_tokens", 0) or 0),
        )
        cost, known = cost_of(model, usage, self.declared_price(model))
        self.ledger.charge(step, model, usage, cost, cost_known=known)
        response = ChatResponse(
            content=redact(message.content, secrets),
            tool_calls=calls,
            model=model,
            usage=usage,
            cost_usd=cost,
            cost_known=known,
            attempts=attempts,
        )
        if self.mode == "record":
            assert self.cassette is not None
            self._record(
                route,
                request,
                step,
                model,
                response,
                vendor_model=str(getattr(raw, "model", "") or ""),
            )
        return response

    def _record(
        self,
        route: ModelRoute,
        request: ChatRequest,
        step: str,
        model: str,
        response: ChatResponse,
        *,
        vendor_model: str,
    ) -> None:
        assert self.cassette is not None
        exchange_request: dict[str, Any] = {
            "model": model,
            "messages": [dict(m) for m in request.messages],
        }
        if route.temperature is not None:
            exchange_request["temperature"] = route.temperature
        if request.tools:
            exchange_request["tools"] = list(request.tools)
        if request.response_format is not None:
            exchange_request["response_format"] = request.response_format
        exchange_response: dict[str, Any] = {
            "model": vendor_model or model,
            "content": response.content,
            "tool_calls": [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in response.tool_calls
            ],
            "usage": {
                "prompt_tokens": response.usage.prompt_tokens,
                "completion_tokens": response.usage.completion_tokens,
            },
        }
        key = self._key(route, request, model)
        self.cassette.record(
            Exchange(key, step, exchange_request, exchange_response), secrets=_secrets(route)
        )

    def _missing_credentials(self, route: ModelRoute, model: str) -> list[str]:
        """The environment variables a live call to a hosted provider needs and lacks.

        Skipped where the spec names a key variable or an endpoint of its own (a local
        OpenAI-compatible server may need no key at all).
        """
        if route.api_key_env is not None or route.api_base is not None:
            return []
        if not self._needs_network(model):
            return []
        variable = HOSTED_KEYS.get(model.split("/", 1)[0])
        return [variable] if variable and not os.environ.get(variable) else []

    def _needs_key(self, route: ModelRoute, model: str) -> bool:
        """Only live calls to real providers use the route's key variable."""
        return route.api_key_env is not None and self._needs_network(model)

    def _needs_network(self, model: str) -> bool:
        """Replayed and scripted answers reach no provider (no key, no rate limit)."""
        return not (self.mode == "replay" or model.startswith(f"{SCRIPTED}/"))

    @staticmethod
    def _key(route: ModelRoute, request: ChatRequest, model: str) -> str:
        return request_key(
            model, request.messages, request.tools, request.response_format, route.temperature
        )


def _secrets(route: ModelRoute) -> list[str]:
    """Values never to keep: the environment's secrets, and the route's own key, whatever its
    variable is called (`api_key_env: LOCAL_LLM_KEY` matches no secret-looking name)."""
    own = os.environ.get(route.api_key_env) if route.api_key_env else None
    return sorted({*secret_values(), *([own] if own else [])}, key=len, reverse=True)


def _response_format(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's response_format for a JSON Schema; an OpenAI-shaped value passes unchanged."""
    if schema.get("type") in _OPENAI_FORMATS:
        return schema
    title = str(schema.get("title") or "output")
    name = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in title)[:64]
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}


def _prefix(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else ""


def _describe(exc: BaseException, api_base: str | None = None, model: str = "") -> str:
    if "LLM Provider NOT provided" in str(exc):
        return (
            f"litellm does not know the provider `{_prefix(model) or model}` "
            "(`codexflow validate` names the closest known ones)"
        )
    if _is_connection_error(exc):
        where = api_base or "the provider's endpoint"
        return f"cannot connect to {where} (is the server running, and is the URL right?)"
    status = status_of(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{status} {text}" if status else text


def _is_connection_error(exc: BaseException) -> bool:
    """A refused or unreachable connection, however litellm and the SDK wrap it."""
    import httpx

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionError | httpx.ConnectError):
            return True
        if type(current).__name__ in ("APIConnectionError", "ConnectError"):
            return "Connection error" in str(current) or "connect" in str(current).lower()
        current = current.__cause__ or current.__context__
    return False
