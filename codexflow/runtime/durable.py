"""Durable steps: each model request and tool call of a unit is journaled as it completes and
replayed on resume, so a step killed at its 15th turn does not pay again for turns 1-14.

The shape is pydantic-ai's durable execution, without teaching the agent about it: the
runtime wraps the executor's provider (`DurableProvider`) and toolset factory
(`DurableToolset`); the agent loop calls the same interfaces either way. Which unit a call
belongs to comes from a context variable that the unit's body sets (and that travels into
the worker thread with the copied context).

The journal of a unit is `<state_dir>/journal/<cache key>.jsonl`: one line per completed
request or tool call, appended and flushed at once (a SIGKILL loses at most the call in
flight). Replay is strict: the n-th live call must match the n-th entry (same kind, same
fingerprint of what was asked), else the journal is cut there and the unit goes on live.
The journal is deleted when the unit's result is stored.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codexflow.errors import RunError
from codexflow.providers.types import ChatRequest, ChatResponse, ModelRoute, ToolCall, Usage

logger = logging.getLogger(__name__)
JOURNAL_DIR = "journal"
_ABRIDGE = 160  # characters of tool arguments quoted in a log line


class UnitCancelled(RunError):
    """The unit's attempt was given up (timeout, cancel): no further request or tool call."""


@dataclass
class UnitContext:
    """What the wrappers need to know about the unit whose body is running."""

    unit_id: str
    journal: Journal | None
    log: Any = None  # a logging.Logger/LoggerAdapter (Prefect's run logger), or None
    cancelled: threading.Event = field(default_factory=threading.Event)
    replayed: int = 0  # calls answered from the journal in this attempt
    secrets: tuple[str, ...] = ()

    def info(self, message: str, *args: Any) -> None:
        if self.log is not None:
            self.log.info(redact_text(message % args if args else message, self.secrets))


CURRENT: contextvars.ContextVar[UnitContext | None] = contextvars.ContextVar(
    "codexflow_unit", default=None
)


def redact_text(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if len(secret) >= 8:
            text = text.replace(secret, "<redacted>")
    return text


def secret_values() -> tuple[str, ...]:
    """Values of the environment that look like credentials: never written to a log line."""
    names = ("KEY", "TOKEN", "SECRET", "PASSWORD")
    return tuple(
        value
        for name, value in os.environ.items()
        if any(part in name.upper() for part in names) and len(value) >= 8
    )


def fingerprint(kind: str, value: Any) -> str:
    material = json.dumps(value, sort_keys=True, ensure_ascii=False, default=repr)
    return hashlib.sha256(f"{kind}\0{material}".encode("utf-8", "surrogatepass")).hexdigest()


class Journal:
    """The completed calls of one unit, in order; thread-safe (one unit, one thread at a time,
    but a timed-out attempt's thread may still be finishing while the next attempt starts)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.entries: list[dict[str, Any]] = []
        self.position = 0
        self.on_disk = False  # whether there is a file to delete (a syscall saved per unit)
        try:
            with path.open(encoding="utf-8", errors="surrogatepass") as handle:
                self.on_disk = True
                for line in handle:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        break  # a line torn by a kill: everything after it is unknown
                    if not isinstance(entry, dict) or "fp" not in entry:
                        break
                    self.entries.append(entry)
        except OSError:
            pass

    @classmethod
    def for_key(cls, state_dir: Path, key: str) -> Journal:
        return cls(Path(state_dir) / JOURNAL_DIR / f"{key}.jsonl")

    def rewind(self) -> None:
        """A new attempt replays from the start."""
        with self.lock:
            self.position = 0

    def replay(self, kind: str, fp: str) -> Any | None:
        """The recorded answer of the next call if it is this call, else None (and the journal
        is cut here: what follows was answered to a different conversation)."""
        with self.lock:
            if self.position < len(self.entries):
                entry = self.entries[self.position]
                if entry.get("kind") == kind and entry.get("fp") == fp:
                    self.position += 1
                    return entry.get("value")
                self._truncate()
            return None

    def record(self, kind: str, fp: str, value: Any) -> None:
        entry = {"kind": kind, "fp": fp, "value": value}
        line = json.dumps(entry, ensure_ascii=False, default=repr) + "\n"
        with self.lock:
            if self.position < len(self.entries):
                self._truncate()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8", errors="surrogatepass") as handle:
                self.on_disk = True
                handle.write(line)
                handle.flush()
            self.entries.append(entry)
            self.position += 1

    def _truncate(self) -> None:
        self.entries = self.entries[: self.position]
        text = "".join(json.dumps(e, ensure_ascii=False, default=repr) + "\n" for e in self.entries)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.on_disk = True
        self.path.write_text(text, encoding="utf-8", errors="surrogatepass")

    def discard(self) -> None:
        with self.lock:
            self.entries, self.position = [], 0
            if self.on_disk:
                self.path.unlink(missing_ok=True)
                self.on_disk = False


def response_to_json(response: ChatResponse) -> dict[str, Any]:
    return {
        "content": response.content,
        "tool_calls": [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in response.tool_calls
        ],
        "model": response.model,
        "usage": {
            "prompt_tokens": response.usage.prompt_tokens,
            "completion_tokens": response.usage.completion_tokens,
        },
        "cost_usd": response.cost_usd,
        "cost_known": response.cost_known,
        "finish_reason": getattr(response, "finish_reason", None),
    }


def response_from_json(data: dict[str, Any]) -> ChatResponse:
    usage = data.get("usage") or {}
    return ChatResponse(
        content=data.get("content"),
        tool_calls=[
            ToolCall(str(c["id"]), str(c["name"]), str(c["arguments"]))
            for c in data.get("tool_calls") or []
        ],
        model=str(data.get("model", "")),
        usage=Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))),
        cost_usd=float(data.get("cost_usd", 0.0)),
        cost_known=bool(data.get("cost_known", True)),
        attempts=0,  # answered from the journal: no request was sent
    )


class DurableProvider:
    """The executor's provider, journaled per unit and logged to the unit's task run."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def complete(self, route: ModelRoute, request: ChatRequest, *, step: str) -> ChatResponse:
        unit = CURRENT.get()
        if unit is None:
            response: ChatResponse = self.inner.complete(route, request, step=step)
            return response
        if unit.cancelled.is_set():
            raise UnitCancelled(f"{unit.unit_id}: attempt given up before its next model request")
        fp = fingerprint(
            "model",
            {
                "model": route.model,
                "messages": list(request.messages),
                "tools": list(request.tools),
                "response_format": request.response_format,
            },
        )
        if unit.journal is not None:
            recorded = unit.journal.replay("model", fp)
            if recorded is not None:
                unit.replayed += 1
                response = response_from_json(recorded)
                unit.info(
                    "model request to %s replayed from the journal (no request sent)",
                    response.model or route.model,
                )
                return response
        response = self.inner.complete(route, request, step=step)
        if unit.journal is not None:
            unit.journal.record("model", fp, response_to_json(response))
        cost = f"${response.cost_usd:.6f}" if response.cost_known else "unknown cost"
        unit.info(
            "model request: %s, %d prompt + %d completion tokens, %s, %s",
            response.model or route.model,
            response.usage.prompt_tokens,
            response.usage.completion_tokens,
            cost,
            f"{len(response.tool_calls)} tool call(s)" if response.tool_calls else "final answer",
        )
        return response


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    content: str
    refused: bool = False


class DurableToolset:
    """An agent's toolset whose completed calls are journaled and never executed twice."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def schemas(self) -> list[dict[str, Any]]:
        schemas: list[dict[str, Any]] = self.inner.schemas()
        return schemas

    def close(self) -> None:
        self.inner.close()

    def call(self, name: str, arguments: str | dict[str, Any]) -> Any:
        unit = CURRENT.get()
        if unit is None:
            return self.inner.call(name, arguments)
        if unit.cancelled.is_set():
            raise UnitCancelled(f"{unit.unit_id}: attempt given up before its next tool call")
        fp = fingerprint("tool", {"name": name, "arguments": arguments})
        if unit.journal is not None:
            recorded = unit.journal.replay("tool", fp)
            if isinstance(recorded, dict):
                unit.replayed += 1
                unit.info("tool %s: result replayed from the journal (not executed again)", name)
                return _Outcome(
                    bool(recorded.get("ok")),
                    str(recorded.get("content", "")),
                    bool(recorded.get("refused")),
                )
        outcome = self.inner.call(name, arguments)
        if unit.journal is not None:
            unit.journal.record(
                "tool",
                fp,
                {"ok": outcome.ok, "content": outcome.content, "refused": outcome.refused},
            )
        shown = arguments if isinstance(arguments, str) else json.dumps(arguments, default=repr)
        if len(shown) > _ABRIDGE:
            shown = shown[:_ABRIDGE] + "…"
        verdict = "refused" if outcome.refused else ("ok" if outcome.ok else "error")
        unit.info(
            "tool %s(%s): %s, %d bytes",
            name,
            shown,
            verdict,
            len(outcome.content.encode("utf-8", "replace")),
        )
        return outcome


def make_durable(executor: Any) -> None:
    """Wrap the executor's provider and toolset factory in place (an AgentExecutor has both;
    another StepExecutor is left as it is)."""
    provider = getattr(executor, "provider", None)
    if provider is not None and not isinstance(provider, DurableProvider):
        executor.provider = DurableProvider(provider)
    if hasattr(executor, "toolset_factory") and not getattr(executor, "_durable_tools", False):
        factory = executor.toolset_factory

        def durable_factory(spec: Any, name: str, context: Any) -> Any:
            build = factory
            if build is None:
                from codexflow.tools import build_toolset

                build = build_toolset
            return DurableToolset(build(spec, name, context))

        executor.toolset_factory = durable_factory
        executor._durable_tools = True
