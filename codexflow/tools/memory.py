"""The memory tools (memory_store, memory_get, memory_search), the store interface they use,
and a thread-safe in-run store for tests and embedders of the tools.

A run's real store is `codexflow.memory.Memory` (SQL + Chroma, kept across runs), wired by
`codexflow.api`. Scopes are the store's business: a refused read or write raises
PermissionError, which the tool reports as a refusal (and the store records as an event).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from codexflow.errors import ToolError
from codexflow.tools.refusal import ToolRefused

if TYPE_CHECKING:  # context.py imports this module
    from codexflow.tools.context import ToolContext


@dataclass(frozen=True)
class MemoryHit:
    """One search result."""

    key: str
    value: str
    score: float


class HitLike(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def value(self) -> str: ...
    @property
    def score(self) -> float: ...


@runtime_checkable
class MemoryStore(Protocol):
    """What memory tools need. `namespace=None` is the store's own; `agent` is who asks (its
    scopes apply), `run_id`/`step_id` go into the audit trail."""

    def put(
        self,
        key: str,
        value: Any,
        *,
        namespace: str | None = None,
        agent: str | None = None,
        run_id: str | None = None,
        step_id: str | None = None,
    ) -> Any: ...

    def get(
        self,
        key: str,
        *,
        namespace: str | None = None,
        agent: str | None = None,
        run_id: str | None = None,
        step_id: str | None = None,
    ) -> str | None: ...

    def search(
        self,
        query: str,
        *,
        namespace: str | None = None,
        agent: str | None = None,
        limit: int = 5,
        run_id: str | None = None,
        step_id: str | None = None,
    ) -> Sequence[HitLike]: ...

    def note(self, text: str, *, agent: str, run_id: str, kind: str = "knowledge") -> None: ...


_WORD = re.compile(r"\w+")
DEFAULT = "default"


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


class InMemoryStore:
    """A dict behind a lock; search ranks entries by the share of query words they contain.
    Lives as long as the process: no scopes, nothing kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[tuple[str, str], str] = {}
        self.notes: list[tuple[str, str, str, str]] = []  # (run, agent, kind, text)

    def put(self, key: str, value: Any, *, namespace: str | None = None, **_ids: Any) -> None:
        text = value if isinstance(value, str) else json.dumps(value)
        with self._lock:
            self._data[(namespace or DEFAULT, key)] = text

    def get(self, key: str, *, namespace: str | None = None, **_ids: Any) -> str | None:
        with self._lock:
            return self._data.get((namespace or DEFAULT, key))

    def search(
        self, query: str, *, namespace: str | None = None, limit: int = 5, **_ids: Any
    ) -> list[MemoryHit]:
        wanted = _words(query)
        if not wanted:
            return []
        with self._lock:
            items = [(k, v) for (ns, k), v in self._data.items() if ns == (namespace or DEFAULT)]
        hits = []
        for key, value in items:
            score = len(wanted & _words(f"{key} {value}")) / len(wanted)
            if score > 0:
                hits.append(MemoryHit(key, value, round(score, 3)))
        hits.sort(key=lambda h: (-h.score, h.key))
        return hits[: max(0, limit)]

    def note(self, text: str, *, agent: str, run_id: str, kind: str = "knowledge") -> None:
        with self._lock:
            self.notes.append((run_id, agent, kind, text))


def _memory(ctx: ToolContext) -> MemoryStore:
    if ctx.memory is None:
        raise ToolError("shared memory is not available in this run")
    return ctx.memory


def _who(ctx: ToolContext) -> dict[str, str]:
    return {"agent": ctx.agent, "run_id": ctx.run_id, "step_id": ctx.step_id}


def memory_store(ctx: ToolContext, key: str, value: str, namespace: str = "") -> str:
    """Save a value under a key in the swarm's shared memory (overwrites); it lasts across runs.
    `namespace`: another namespace your scopes allow (empty: the swarm's)."""
    if not key.strip():
        raise ToolError("a key is required")
    try:
        _memory(ctx).put(key, value, namespace=namespace or None, **_who(ctx))
    except PermissionError as exc:
        raise ToolRefused(f"refused: {exc}") from None
    return f"stored {key}"


def memory_get(ctx: ToolContext, key: str, namespace: str = "") -> str:
    """Read the value saved under a key in the swarm's shared memory (by any run)."""
    try:
        value = _memory(ctx).get(key, namespace=namespace or None, **_who(ctx))
    except PermissionError as exc:
        raise ToolRefused(f"refused: {exc}") from None
    if value is None:
        raise ToolError(f"no memory under {key!r}")
    return value


def memory_search(ctx: ToolContext, query: str, limit: int = 5, namespace: str = "") -> str:
    """Find entries of the swarm's shared memory related in meaning to the query, best first."""
    try:
        hits = _memory(ctx).search(
            query, namespace=namespace or None, limit=max(1, min(limit, 50)), **_who(ctx)
        )
    except PermissionError as exc:
        raise ToolRefused(f"refused: {exc}") from None
    return json.dumps(
        [{"key": h.key, "value": h.value, "score": h.score} for h in hits], ensure_ascii=False
    )


NOTE_KINDS = ("knowledge", "conversation")


def memory_note(ctx: ToolContext, text: str, kind: str = "knowledge") -> str:
    """Keep a note of your own about this run: `knowledge` (a fact you learned) or
    `conversation` (what was said or decided). Shown with the run's agents."""
    if not text.strip():
        raise ToolError("a note needs some text")
    if kind not in NOTE_KINDS:
        raise ToolError(f"kind must be one of {', '.join(NOTE_KINDS)}")
    _memory(ctx).note(text[:4000], agent=ctx.agent, run_id=ctx.run_id, kind=kind)
    return "noted"
