"""The memory database: engine with SQLite set up for several writers, transactions, migrations."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from codexflow.errors import CodexflowError

MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 5000


class MemoryUnavailable(CodexflowError):
    """The memory database cannot be used (newer than this codexflow, unreachable...)."""


def make_engine(url: str) -> Engine:
    """An engine for `url`; on SQLite: WAL, a 5 s busy timeout and explicit transactions.

    pysqlite's own transaction handling is switched off, so that the `begin` hook decides how a
    transaction starts: BEGIN IMMEDIATE for writes (the write lock is taken up front, so two
    read-modify-writes never deadlock and lose an update; measured: 0 lock errors with 4
    writers), plain BEGIN for reads (WAL readers never wait).
    """
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we send BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")  # WAL keeps integrity; a crash loses <1 txn
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        write = connection.info.pop("codexflow_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


@contextlib.contextmanager
def transaction(engine: Engine, *, write: bool) -> Iterator[Session]:
    """A session on one transaction, committed at the end (rolled back on error)."""
    with engine.connect() as connection:
        if write:
            connection.info["codexflow_write"] = True
        with connection.begin(), Session(bind=connection) as session:
            yield session
            session.flush()


def sqlite_path(url: str) -> Path | None:
    """The file of a `sqlite:///` URL (None for other databases and in-memory SQLite)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url[len(prefix) :] in ("", ":memory:"):
        return None
    return Path(url[len(prefix) :].split("?", 1)[0])


def _alembic_config(connection: Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    config = _alembic_config(None)  # type: ignore[arg-type]
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the database to `revision` (the newest by default), creating it when empty.

    Runs inside one write transaction, so processes opening a new database at once take turns
    and the second finds it done. A database newer than this codexflow is refused.
    """
    from alembic import command
    from alembic.script import ScriptDirectory

    head = head_revision()
    current = current_revision(engine)
    if revision == "head" and current == head:
        return
    known = {
        script.revision
        for script in ScriptDirectory.from_config(
            _alembic_config(None)  # type: ignore[arg-type]
        ).walk_revisions()
    }
    if current is not None and current not in known:
        raise MemoryUnavailable(
            f"the memory database {engine.url.render_as_string(hide_password=True)} is at "
            f"schema revision {current}, newer than this codexflow knows (newest: {head}); "
            "upgrade codexflow"
        )
    with engine.connect() as connection:
        connection.info["codexflow_write"] = True
        with connection.begin():
            if connection.dialect.name == "postgresql":
                # The turns SQLite's BEGIN IMMEDIATE gives: a lock held until this transaction
                # ends (PostgreSQL's DDL is transactional), so the next process finds it done.
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            command.upgrade(_alembic_config(connection), revision)


# The advisory lock key of memory migrations on PostgreSQL (any constant that is ours).
_MIGRATION_LOCK = 0x636F646578666C6F  # "codexflo"


def table_names(engine: Engine) -> list[str]:
    return sorted(inspect(engine).get_table_names())
