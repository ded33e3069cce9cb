"""What happened in runs: sessions, agent lifecycle states, agent notes and the events table."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import col

from codexflow.events import Event
from codexflow.memory.db import transaction
from codexflow.memory.tables import (
    AGENT_STATES,
    AgentNoteRow,
    AgentStateRow,
    EventRow,
    SessionRow,
)

# How step events move an agent through its lifecycle.
STATE_OF_EVENT = {
    "codexflow.step.started": "running",
    "codexflow.step.finished": "idle",
    "codexflow.step.cached": "idle",
    "codexflow.step.skipped": "idle",
    "codexflow.step.failed": "error",
}


@dataclass
class AgentSpend:
    """What one agent did in a run, summed over its steps (from the run's step records)."""

    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    errors: list[str] = field(default_factory=list)


class History:
    """Reads and writes sessions, agent states, notes and events on the memory database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- sessions ------------------------------------------------------------------------
    def start_session(
        self,
        run_id: str,
        spec_name: str,
        spec_hash: str,
        inputs: dict[str, Any],
        agents: Iterable[str] = (),
    ) -> None:
        """The run's session row, and every agent of the spec in state `created`."""
        now = time.time()
        with transaction(self.engine, write=True) as session:
            session.merge(
                SessionRow(
                    run_id=run_id,
                    spec_name=spec_name,
                    spec_hash=spec_hash,
                    inputs=inputs,
                    status="running",
                    started_at=now,
                )
            )
            for agent in agents:
                session.merge(
                    AgentStateRow(
                        run_id=run_id,
                        agent=agent,
                        state="created",
                        created_at=now,
                        updated_at=now,
                        transitions={"created": now},
                    )
                )

    def finish_session(
        self, run_id: str, status: str, reason: str, spend: dict[str, AgentSpend]
    ) -> None:
        """Close the session; every agent ends `terminated`, or `error` if a step of it failed."""
        now = time.time()
        with transaction(self.engine, write=True) as session:
            row = session.get(SessionRow, run_id)
            if row is not None:
                row.status, row.reason, row.finished_at = status, reason, now
                session.add(row)
            for agent, spent in spend.items():
                state = session.get(AgentStateRow, (run_id, agent))
                if state is None:
                    state = AgentStateRow(
                        run_id=run_id,
                        agent=agent,
                        state="created",
                        created_at=now,
                        updated_at=now,
                        transitions={"created": now},
                    )
                final = "error" if spent.errors else "terminated"
                state.state, state.updated_at = final, now
                state.transitions = {**state.transitions, final: now}
                state.steps = spent.steps
                state.prompt_tokens = spent.prompt_tokens
                state.completion_tokens = spent.completion_tokens
                state.cost_usd = round(spent.cost_usd, 6)
                state.error = "; ".join(spent.errors)[:2000]
                session.add(state)

    def sessions(self, limit: int = 50) -> list[SessionRow]:
        with transaction(self.engine, write=False) as session:
            query = select(SessionRow).order_by(col(SessionRow.started_at).desc()).limit(limit)
            return list(session.execute(query).scalars())

    def session(self, run_id: str) -> SessionRow | None:
        """A session by id or unique prefix (None when none or several match)."""
        with transaction(self.engine, write=False) as session:
            rows = list(
                session.execute(
                    select(SessionRow)
                    .where(col(SessionRow.run_id).startswith(run_id, autoescape=True))
                    .limit(2)
                ).scalars()
            )
        return rows[0] if len(rows) == 1 else None

    # -- agents --------------------------------------------------------------------------
    def set_state(self, run_id: str, agent: str, state: str, error: str = "") -> None:
        if state not in AGENT_STATES:
            raise ValueError(f"unknown agent state {state!r}")
        now = time.time()
        with transaction(self.engine, write=True) as session:
            row = session.get(AgentStateRow, (run_id, agent))
            if row is None:
                row = AgentStateRow(
                    run_id=run_id,
                    agent=agent,
                    state="created",
                    created_at=now,
                    updated_at=now,
                    transitions={"created": now},
                )
            row.state, row.updated_at = state, now
            row.transitions = {**row.transitions, state: now}
            if error:
                row.error = error[:2000]
            session.add(row)

    def agents(self, run_id: str) -> list[AgentStateRow]:
        with transaction(self.engine, write=False) as session:
            query = select(AgentStateRow).where(col(AgentStateRow.run_id) == run_id)
            return list(session.execute(query.order_by(col(AgentStateRow.agent))).scalars())

    def add_note(self, run_id: str, agent: str, text: str, kind: str = "knowledge") -> None:
        with transaction(self.engine, write=True) as session:
            session.add(
                AgentNoteRow(
                    run_id=run_id, agent=agent, kind=kind, text=text, created_at=time.time()
                )
            )

    def notes(self, run_id: str, agent: str | None = None) -> list[AgentNoteRow]:
        query = select(AgentNoteRow).where(col(AgentNoteRow.run_id) == run_id)
        if agent is not None:
            query = query.where(col(AgentNoteRow.agent) == agent)
        with transaction(self.engine, write=False) as session:
            return list(session.execute(query.order_by(col(AgentNoteRow.id))).scalars())

    # -- events --------------------------------------------------------------------------
    def record(self, event: Event) -> None:
        """Store one event; a step event also moves its agent to the state it implies."""
        with transaction(self.engine, write=True) as session:
            session.add(
                EventRow(
                    name=event.name,
                    run_id=event.run_id,
                    step_id=event.step_id,
                    agent=event.agent,
                    payload=dict(event.payload),
                    time=event.time,
                )
            )
            state = STATE_OF_EVENT.get(event.name)
            if state is None or not event.agent or not event.run_id:
                return
            row = session.get(AgentStateRow, (event.run_id, event.agent))
            if row is None:
                row = AgentStateRow(
                    run_id=event.run_id,
                    agent=event.agent,
                    state="created",
                    created_at=event.time,
                    updated_at=event.time,
                    transitions={"created": event.time},
                )
            row.state, row.updated_at = state, event.time
            row.transitions = {**row.transitions, state: event.time}
            if state == "error":
                row.error = str(event.payload.get("error", ""))[:2000]
            session.add(row)

    def events(self, run_id: str | None = None, name: str | None = None) -> list[EventRow]:
        query = select(EventRow)
        if run_id is not None:
            query = query.where(col(EventRow.run_id) == run_id)
        if name is not None:
            query = query.where(col(EventRow.name) == name)
        with transaction(self.engine, write=False) as session:
            return list(
                session.execute(query.order_by(col(EventRow.time), col(EventRow.id))).scalars()
            )
