"""Memory: key/value entries in SQL with their vectors in Chroma, under scopes and retention."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlmodel import Session, col

from codexflow.events import Event, EventBus, EventName
from codexflow.memory.config import MemoryConfig
from codexflow.memory.db import make_engine, migrate, transaction
from codexflow.memory.embeddings import Embedder, make_embedder
from codexflow.memory.history import History
from codexflow.memory.scopes import Mode
from codexflow.memory.tables import EntryRow
from codexflow.memory.vectors import VectorStore

# Writers that may create one key at the same moment: each retry finds the row to lock.
_INSERT_RACES = 8


class MemoryRefused(PermissionError):
    """An agent reached outside its scopes; recorded as a `codexflow.memory.refused` event."""


@dataclass(frozen=True)
class Entry:
    """One entry as the API and `codexflow memory` show it; `value` is any JSON value."""

    namespace: str
    key: str
    value: Any
    tags: list[str]
    author: str | None
    run_id: str | None
    created_at: float
    updated_at: float
    expires_at: float | None

    @property
    def text(self) -> str:
        """The value as an agent reads it: strings as they are, the rest as JSON."""
        return self.value if isinstance(self.value, str) else json.dumps(self.value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Hit:
    """A search result: the entry's key, its text and the cosine similarity."""

    key: str
    value: str
    score: float
    namespace: str


def _entry(row: EntryRow) -> Entry:
    return Entry(
        namespace=row.namespace,
        key=row.key,
        value=json.loads(row.value),
        tags=list(row.tags or []),
        author=row.author,
        run_id=row.run_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        expires_at=row.expires_at,
    )


def _live(now: float) -> Any:
    return (col(EntryRow.expires_at).is_(None)) | (col(EntryRow.expires_at) > now)


class Memory:
    """The shared memory of one spec (or of the CLI): thread-safe, one per process is enough."""

    def __init__(self, config: MemoryConfig, bus: EventBus | None = None) -> None:
        self.config = config
        self.namespace = config.namespace
        self.bus = bus
        self._embedder: Embedder | None = None
        self.engine = make_engine(config.database)
        migrate(self.engine)
        self.vectors = VectorStore(config.vectors)
        self.history = History(self.engine)

    @property
    def embedder(self) -> Embedder:
        """Made on first use: runs that never search or store pay nothing for it."""
        if self._embedder is None:
            self._embedder = make_embedder(
                self.config.embedding,
                api_base=self.config.api_base,
                api_key_env=self.config.api_key_env,
            )
        return self._embedder

    def close(self) -> None:
        self.engine.dispose()

    # -- scopes and events ---------------------------------------------------------------
    def _check(self, agent: str | None, namespace: str, mode: Mode, key: str, **ids: Any) -> None:
        if self.config.rules.allows(agent, namespace, mode):
            return
        allowed = (
            self.config.rules.readable(agent)
            if mode == "read"
            else self.config.rules.writable(agent)
        )
        message = (
            f"agent `{agent}` may not {mode} the memory namespace `{namespace}` "
            f"(it may {mode}: {allowed}; see memory.scopes in the spec)"
        )
        self._emit(
            "codexflow.memory.refused", agent, namespace, key, mode=mode, reason=message, **ids
        )
        raise MemoryRefused(message)

    def _emit(
        self, name: EventName, agent: str | None, namespace: str, key: str, **extra: Any
    ) -> None:
        if self.bus is None:
            return
        run_id, step_id = extra.pop("run_id", None), extra.pop("step_id", None)
        payload = {"namespace": namespace, "key": key, **extra}
        self.bus.emit(Event(name, run_id or "", step_id, agent, payload))

    # -- entries -------------------------------------------------------------------------
    def put(
        self,
        key: str,
        value: Any,
        *,
        namespace: str | None = None,
        agent: str | None = None,
        run_id: str | None = None,
        step_id: str | None = None,
        tags: Iterable[str] = (),
        ttl: float | None = None,
    ) -> Entry:
        """Write (or overwrite) an entry and its vector; retention is applied on the way.

        The vector is made first: an embedder that fails leaves nothing half written."""
        self._check(
            agent, namespace or self.namespace, "write", key, run_id=run_id, step_id=step_id
        )
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        vector = self.embedder.embed([f"{key}: {text}"])[0]
        return self.update(
            key,
            lambda _old: value,
            vector=vector,
            namespace=namespace,
            agent=agent,
            run_id=run_id,
            step_id=step_id,
            tags=tags,
            ttl=ttl,
        )

    def update(
        self,
        key: str,
        change: Callable[[Any], Any],
        *,
        namespace: str | None = None,
        agent: str | None = None,
        run_id: str | None = None,
        step_id: str | None = None,
        tags: Iterable[str] | None = None,
        ttl: float | None = None,
        vector: list[float] | None = None,
    ) -> Entry:
        """Read-modify-write in one write transaction (BEGIN IMMEDIATE on SQLite, row lock
        elsewhere): `change(old value or None)` returns the new value; no update is lost.

        On PostgreSQL a row lock cannot hold a key that has no row yet: when two writers create
        the same key at once, the second one's insert fails on the unique key and its whole
        transaction runs again, now locking the first one's row (so `change` may be called more
        than once; only the committed call counts)."""
        from sqlalchemy.exc import IntegrityError

        ns = namespace or self.namespace
        self._check(agent, ns, "write", key, run_id=run_id, step_id=step_id)
        for attempt in range(_INSERT_RACES):
            try:
                entry, removed = self._update_once(ns, key, change, agent, run_id, tags, ttl)
                break
            except IntegrityError:
                if attempt == _INSERT_RACES - 1:
                    raise
        self._index([entry], [vector] if vector is not None else None)
        if removed:
            self.vectors.delete(ns, self.embedder.id, removed)
        self._emit(
            "codexflow.memory.written",
            agent,
            ns,
            key,
            run_id=run_id,
            step_id=step_id,
            pruned=len(removed),
        )
        return entry

    def _update_once(
        self,
        ns: str,
        key: str,
        change: Callable[[Any], Any],
        agent: str | None,
        run_id: str | None,
        tags: Iterable[str] | None,
        ttl: float | None,
    ) -> tuple[Entry, list[str]]:
        now = time.time()
        lifetime = ttl if ttl is not None else self.config.ttl
        with transaction(self.engine, write=True) as session:
            row = session.execute(
                select(EntryRow)
                .where(col(EntryRow.namespace) == ns, col(EntryRow.key) == key)
                .with_for_update()
            ).scalar_one_or_none()
            alive = row is not None and (row.expires_at is None or row.expires_at > now)
            new_value = change(json.loads(row.value) if row is not None and alive else None)
            encoded = json.dumps(new_value, ensure_ascii=False)
            if row is None:
                row = EntryRow(namespace=ns, key=key, value=encoded, created_at=now, updated_at=now)
            row.value = encoded
            row.updated_at = now
            row.author = agent
            row.run_id = run_id
            row.expires_at = now + lifetime if lifetime else None
            if tags is not None:
                row.tags = sorted(set(tags))
            session.add(row)
            session.flush()
            entry = _entry(row)
            removed = self._retain(session, ns, now, keep=key)
        return entry, removed

    def _retain(self, session: Session, namespace: str, now: float, keep: str = "") -> list[str]:
        """Delete expired entries and those past `max_entries` (oldest first); their keys."""
        expired = select(col(EntryRow.key)).where(
            col(EntryRow.namespace) == namespace,
            col(EntryRow.expires_at).is_not(None),
            col(EntryRow.expires_at) <= now,
        )
        removed = list(session.execute(expired).scalars())
        limit = self.config.max_entries
        if limit is not None:
            live = (
                select(col(EntryRow.key))
                .where(col(EntryRow.namespace) == namespace, _live(now), col(EntryRow.key) != keep)
                .order_by(col(EntryRow.updated_at).desc(), col(EntryRow.id).desc())
            )
            keep_others = limit - 1 if keep else limit  # the entry just written stays
            removed += list(session.execute(live.offset(max(0, keep_others))).scalars())
        if removed:
            session.execute(
                delete(EntryRow).where(
                    col(EntryRow.namespace) == namespace, col(EntryRow.key).in_(removed)
                )
            )
        return removed

    def _index(self, entries: list[Entry], vectors: list[list[float]] | None = None) -> None:
        if vectors is not None:  # already made from the same text
            for entry, vector in zip(entries, vectors, strict=True):
                self.vectors.upsert(
                    entry.namespace,
                    self.embedder.id,
                    [entry.key],
                    [vector],
                    [{"namespace": entry.namespace, "key": entry.key}],
                )
            return
        by_namespace: dict[str, list[Entry]] = {}
        for entry in entries:
            by_namespace.setdefault(entry.namespace, []).append(entry)
        for ns, group in by_namespace.items():
            vectors = self.embedder.embed([f"{e.key}: {e.text}" for e in group])
            self.vectors.upsert(
                ns,
                self.embedder.id,
                [e.key for e in group],
                vectors,
                [{"namespace": ns, "key": e.key} for e in group],
            )

    def entry(
        self, key: str, *, namespace: str | None = None, agent: str | None = None, **ids: Any
    ) -> Entry | None:
        ns = namespace or self.namespace
        self._check(agent, ns, "read", key, **ids)
        now = time.time()
        with transaction(self.engine, write=False) as session:
            row = session.execute(
                select(EntryRow).where(
                    col(EntryRow.namespace) == ns, col(EntryRow.key) == key, _live(now)
                )
            ).scalar_one_or_none()
            return _entry(row) if row is not None else None

    def get(
        self, key: str, *, namespace: str | None = None, agent: str | None = None, **ids: Any
    ) -> str | None:
        """The entry's text, or None when there is none (or it expired)."""
        found = self.entry(key, namespace=namespace, agent=agent, **ids)
        return found.text if found is not None else None

    def delete(self, key: str, *, namespace: str | None = None) -> bool:
        ns = namespace or self.namespace
        with transaction(self.engine, write=True) as session:
            gone: Any = session.execute(
                delete(EntryRow).where(col(EntryRow.namespace) == ns, col(EntryRow.key) == key)
            )
        if gone.rowcount:
            self.vectors.delete(ns, self.embedder.id, [key])
        return bool(gone.rowcount)

    def entries(
        self, *, namespace: str | None = None, prefix: str = "", limit: int | None = None
    ) -> list[Entry]:
        """Live entries, by namespace then key; `namespace=None` lists every namespace."""
        now = time.time()
        query = select(EntryRow).where(_live(now))
        if namespace is not None:
            query = query.where(col(EntryRow.namespace) == namespace)
        if prefix:
            query = query.where(col(EntryRow.key).startswith(prefix, autoescape=True))
        query = query.order_by(col(EntryRow.namespace), col(EntryRow.key)).limit(limit)
        with transaction(self.engine, write=False) as session:
            return [_entry(row) for row in session.execute(query).scalars()]

    def count(self, namespace: str | None = None) -> int:
        query = select(func.count()).select_from(EntryRow)
        if namespace is not None:
            query = query.where(col(EntryRow.namespace) == namespace)
        with transaction(self.engine, write=False) as session:
            return int(session.execute(query).scalar_one())

    def namespaces(self) -> list[str]:
        with transaction(self.engine, write=False) as session:
            return list(session.execute(select(col(EntryRow.namespace)).distinct()).scalars())

    def search(
        self,
        query: str,
        *,
        namespace: str | None = None,
        agent: str | None = None,
        limit: int = 5,
        **ids: Any,
    ) -> list[Hit]:
        """The entries nearest in meaning to `query`, best first."""
        ns = namespace or self.namespace
        self._check(agent, ns, "read", "", **ids)
        if not query.strip():
            return []
        vector = self.embedder.embed([query])[0]
        found = self.vectors.query(ns, self.embedder.id, vector, limit + 5)
        if not found:
            return []
        now = time.time()
        keys = [hit.key for hit in found]
        with transaction(self.engine, write=False) as session:
            rows = session.execute(
                select(EntryRow).where(
                    col(EntryRow.namespace) == ns, col(EntryRow.key).in_(keys), _live(now)
                )
            ).scalars()
            texts = {row.key: _entry(row).text for row in rows}
        # Vectors whose entry expired or was deleted elsewhere are skipped, not shown.
        # A score of 0 or less shares nothing with the query (orthogonal or opposite).
        hits = [
            Hit(h.key, texts[h.key], h.score, ns) for h in found if h.key in texts and h.score > 0
        ]
        return hits[: max(0, limit)]

    def note(self, text: str, *, agent: str, run_id: str, kind: str = "knowledge") -> None:
        """An agent's own note about its run (knowledge or conversation), kept with the run."""
        self.history.add_note(run_id, agent, text, kind)

    # -- retention, export, import -------------------------------------------------------
    def prune(self, namespace: str | None = None) -> int:
        """Apply ttl and max_entries now; the number of entries removed."""
        total = 0
        for ns in [namespace] if namespace else self.namespaces():
            with transaction(self.engine, write=True) as session:
                removed = self._retain(session, ns, time.time())
            if removed:
                self.vectors.delete(ns, self.embedder.id, removed)
            total += len(removed)
        return total

    def export(self, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        for entry in self.entries(namespace=namespace):
            yield entry.to_dict()

    def import_entries(self, rows: Iterable[dict[str, Any]], *, batch: int = 256) -> int:
        """Upsert exported entries (timestamps and authors kept) and index their vectors."""
        count = 0
        pending: list[dict[str, Any]] = []
        for row in rows:
            pending.append(row)
            if len(pending) >= batch:
                count += self._import(pending)
                pending = []
        return count + (self._import(pending) if pending else 0)

    def _import(self, rows: list[dict[str, Any]]) -> int:
        now = time.time()
        entries = []
        with transaction(self.engine, write=True) as session:
            for data in rows:
                ns = str(data.get("namespace") or self.namespace)
                key = str(data["key"])
                row = session.execute(
                    select(EntryRow).where(col(EntryRow.namespace) == ns, col(EntryRow.key) == key)
                ).scalar_one_or_none()
                if row is None:
                    row = EntryRow(
                        namespace=ns,
                        key=key,
                        value="null",
                        created_at=float(data.get("created_at") or now),
                        updated_at=now,
                    )
                row.value = json.dumps(data.get("value"), ensure_ascii=False)
                row.tags = sorted(set(data.get("tags") or []))
                row.author = data.get("author")
                row.run_id = data.get("run_id")
                row.updated_at = float(data.get("updated_at") or now)
                expires = data.get("expires_at")
                row.expires_at = float(expires) if expires is not None else None
                session.add(row)
                session.flush()
                entries.append(_entry(row))
        self._index(entries)
        return len(entries)
