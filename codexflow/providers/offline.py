"""litellm custom providers that answer from a Script or a Cassette, so offline calls travel the
same path (retries, breakers, cost, ledger) as calls to a real provider.

A call names its source and step in `api_base`: `codexflow://<source id>/<step>[/<request key>]`.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from typing import Any
from urllib.parse import quote, unquote

from ._litellm import REPLAY, SCRIPTED
from .cassette import Cassette
from .scripted import Script, ScriptedReply

_lock = threading.Lock()
# Weak: a source lives as long as the Provider that registered it.
_sources: weakref.WeakValueDictionary[str, Script | Cassette] = weakref.WeakValueDictionary()
_counter = 0


def register_source(source: Script | Cassette) -> str:
    """Make a script or cassette reachable by the handlers; returns its id."""
    global _counter
    with _lock:
        _counter += 1
        source_id = f"s{_counter}"
        _sources[source_id] = source
        return source_id


def source_url(source_id: str, step: str, key: str = "") -> str:
    url = f"codexflow://{source_id}/{quote(step, safe='')}"
    return f"{url}/{key}" if key else url


def _parse_url(api_base: str | None) -> tuple[Script | Cassette, str, str]:
    if not api_base or not api_base.startswith("codexflow://"):
        raise LookupError(f"offline providers need a codexflow:// api_base, got {api_base!r}")
    source_id, _, rest = api_base.removeprefix("codexflow://").partition("/")
    step, _, key = rest.partition("/")
    source = _sources.get(source_id)
    if source is None:
        raise LookupError(f"offline source {source_id} is gone (its Provider was discarded)")
    return source, unquote(step), key


def register_handlers(module: Any) -> None:
    """Add the scripted and replay handlers to litellm.custom_provider_map (once)."""
    from litellm.llms.custom_llm import CustomLLMError

    class OfflineError(CustomLLMError):
        # litellm copies `headers` of a provider's exception into `litellm_response_headers`,
        # which is where the retry layer reads Retry-After from.
        def __init__(
            self, status_code: int, message: str, headers: dict[str, str] | None = None
        ) -> None:
            super().__init__(status_code=status_code, message=message)
            import httpx

            self.headers = httpx.Headers(headers or {})

    def fill(model_response: Any, model: str, answer: dict[str, Any]) -> Any:
        calls = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in answer.get("tool_calls") or []
        ]
        choice = model_response.choices[0]
        choice.message = module.Message(
            content=answer.get("content"), role="assistant", tool_calls=calls or None
        )
        choice.finish_reason = "tool_calls" if calls else "stop"
        usage = answer.get("usage") or {}
        prompt, completion = (
            int(usage.get("prompt_tokens", 0)),
            int(usage.get("completion_tokens", 0)),
        )
        model_response.usage = module.Usage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )
        model_response.model = answer.get("model") or model
        return model_response

    def wait(delay: float, timeout: Any) -> None:
        limit = timeout if isinstance(timeout, int | float) else None
        if limit is not None and delay > limit:
            time.sleep(limit)  # as a hung server would: the caller waits the whole timeout
            raise OfflineError(408, f"scripted delay {delay}s is past the timeout of {limit}s")
        time.sleep(delay)

    class ScriptedLLM(module.CustomLLM):
        """Answers `scripted/<name>` models from the Script the Provider registered."""

        def completion(
            self, model: str, messages: list[Any], api_base: str, *args: Any, **kwargs: Any
        ) -> Any:
            try:
                script, step, _ = _parse_url(api_base)
                if not isinstance(script, Script):
                    raise LookupError(f"scripted/{model} needs a Script, the Provider has none")
                reply = script.next_reply(f"{SCRIPTED}/{model}", step)
            except LookupError as exc:
                raise OfflineError(404, str(exc)) from None
            wait(reply.delay, kwargs.get("timeout"))
            if reply.error is not None:
                headers = (
                    {}
                    if reply.error.retry_after is None
                    else {"retry-after": str(reply.error.retry_after)}
                )
                raise OfflineError(reply.error.status, reply.error.message, headers)
            return fill(kwargs["model_response"], f"{SCRIPTED}/{model}", _answer(reply))

    class ReplayLLM(module.CustomLLM):
        """Answers `codexflow-replay/<model>` from the Cassette the Provider registered."""

        def completion(
            self, model: str, messages: list[Any], api_base: str, *args: Any, **kwargs: Any
        ) -> Any:
            try:
                cassette, step, key = _parse_url(api_base)
            except LookupError as exc:
                raise OfflineError(404, str(exc)) from None
            exchange = cassette.find(key) if isinstance(cassette, Cassette) else None
            if exchange is None:
                raise OfflineError(404, f"no recorded exchange for step '{step}' (model {model})")
            return fill(kwargs["model_response"], model, exchange.response)

    handlers = {SCRIPTED: ScriptedLLM(), REPLAY: ReplayLLM()}
    present = {item["provider"] for item in module.custom_provider_map}
    module.custom_provider_map = [
        *module.custom_provider_map,
        *(
            {"provider": name, "custom_handler": handler}
            for name, handler in handlers.items()
            if name not in present
        ),
    ]
    # litellm only learns custom provider names when the map is read at call setup; registering
    # here makes the names known before the first call too.
    from litellm.utils import custom_llm_setup

    custom_llm_setup()


def _answer(reply: ScriptedReply) -> dict[str, Any]:
    calls = []
    for index, call in enumerate(reply.tool_calls):
        arguments = call.get("arguments", {})
        calls.append(
            {
                "id": str(call.get("id", f"call_{index}")),
                "name": str(call["name"]),
                "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
            }
        )
    return {
        "content": reply.content,
        "tool_calls": calls,
        "usage": {"prompt_tokens": reply.usage[0], "completion_tokens": reply.usage[1]},
    }
