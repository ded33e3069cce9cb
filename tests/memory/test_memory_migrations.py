"""Alembic migrations: a database made by an older codexflow opens in this one, data intact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlmodel import SQLModel

from codexflow.memory import Memory, MemoryConfig
from codexflow.memory.db import (
    MemoryUnavailable,
    current_revision,
    head_revision,
    make_engine,
    migrate,
    table_names,
)


def test_a_v1_database_migrates_forward_and_keeps_its_entries(tmp_path: Path) -> None:
    config = MemoryConfig.under(tmp_path, namespace="team", embedding="hash")
    engine = make_engine(config.database)
    migrate(engine, "0001")  # what the first codexflow with memory created
    assert current_revision(engine) == "0001"
    assert "agent_states" not in table_names(engine)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO memory_entries (namespace, key, value, tags, author, run_id,"
                " created_at, updated_at) VALUES ('team', 'fact', :value, '[]', 'old', NULL, 1, 2)"
            ),
            {"value": json.dumps("kept across versions")},
        )
    engine.dispose()
    memory = Memory(config)  # this codexflow: migrates to the newest schema on open
    assert current_revision(memory.engine) == head_revision() != "0001"
    assert {"agent_states", "agent_notes", "events", "sessions"} <= set(table_names(memory.engine))
    entry = memory.entry("fact")
    assert entry is not None and (entry.value, entry.author, entry.expires_at) == (
        "kept across versions",
        "old",
        None,
    )
    memory.put("new", "written after the upgrade", ttl=60)
    assert memory.entry("new") is not None


def test_the_migrations_build_exactly_the_tables_of_the_models(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == []


def test_a_database_newer_than_this_codexflow_is_refused(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(MemoryUnavailable, match="revision 9999, newer than this codexflow"):
        migrate(engine)
