"""The SQLModel tables of shared memory: sessions, entries, agent state and notes, events."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

# Agent lifecycle, as the seed's agent state machine names it.
AGENT_STATES = ("created", "idle", "running", "error", "terminated")


class SessionRow(SQLModel, table=True):
    """One run: what was applied with which inputs, and how it ended."""

    __tablename__ = "sessions"

    run_id: str = Field(primary_key=True, max_length=64)
    spec_name: str = Field(index=True, max_length=63)
    spec_hash: str = Field(max_length=64)
    inputs: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="running", max_length=16)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    started_at: float
    finished_at: float | None = None


class EntryRow(SQLModel, table=True):
    """One remembered value: unique per namespace and key."""

    __tablename__ = "memory_entries"
    __table_args__ = (UniqueConstraint("namespace", "key", name="uq_entry_namespace_key"),)

    id: int | None = Field(default=None, primary_key=True)
    namespace: str = Field(max_length=63)
    key: str = Field(max_length=512)
    value: str = Field(sa_column=Column(Text, nullable=False))  # JSON text
    tags: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    author: str | None = Field(default=None, max_length=64)
    run_id: str | None = Field(default=None, max_length=64)
    created_at: float
    updated_at: float = Field(index=True)
    expires_at: float | None = Field(default=None, index=True)


class AgentStateRow(SQLModel, table=True):
    """An agent's lifecycle in one run, with what it spent."""

    __tablename__ = "agent_states"

    run_id: str = Field(primary_key=True, max_length=64)
    agent: str = Field(primary_key=True, max_length=64)
    state: str = Field(max_length=16)
    created_at: float
    updated_at: float
    # Time of the latest entry into each state: {"running": 1767..., "idle": ...}.
    transitions: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class AgentNoteRow(SQLModel, table=True):
    """Knowledge or conversation notes an agent chose to keep."""

    __tablename__ = "agent_notes"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True, max_length=64)
    agent: str = Field(max_length=64)
    kind: str = Field(default="knowledge", max_length=16)
    text: str = Field(sa_column=Column(Text, nullable=False))
    created_at: float


class EventRow(SQLModel, table=True):
    """The audit trail: every event a run emitted."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_run_time", "run_id", "time"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64)
    run_id: str = Field(max_length=64)
    step_id: str | None = Field(default=None, max_length=128)
    agent: str | None = Field(default=None, max_length=64)
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    time: float
