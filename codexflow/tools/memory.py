"""The shared-memory interface tools use, and a simple thread-safe in-run implementation."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class MemoryHit:
    """One search result."""

    key: str
    value: str
    score: float


@runtime_checkable
class MemoryStore(Protocol):
    """What memory tools need; a later issue provides a SQLModel + Chroma implementation."""

    def put(self, key: str, value: str, *, namespace: str = "default") -> None: ...

    def get(self, key: str, *, namespace: str = "default") -> str | None: ...

    def search(
        self, query: str, *, namespace: str = "default", limit: int = 5
    ) -> list[MemoryHit]: ...


_WORD = re.compile(r"\w+")


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


class InMemoryStore:
    """A dict behind a lock; search ranks entries by the share of query words they contain."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[tuple[str, str], str] = {}

    def put(self, key: str, value: str, *, namespace: str = "default") -> None:
        with self._lock:
            self._data[(namespace, key)] = value

    def get(self, key: str, *, namespace: str = "default") -> str | None:
        with self._lock:
            return self._data.get((namespace, key))

    def search(self, query: str, *, namespace: str = "default", limit: int = 5) -> list[MemoryHit]:
        wanted = _words(query)
        if not wanted:
            return []
        with self._lock:
            items = [(k, v) for (ns, k), v in self._data.items() if ns == namespace]
        hits = []
        for key, value in items:
            score = len(wanted & _words(f"{key} {value}")) / len(wanted)
            if score > 0:
                hits.append(MemoryHit(key, value, round(score, 3)))
        hits.sort(key=lambda h: (-h.score, h.key))
        return hits[: max(0, limit)]
