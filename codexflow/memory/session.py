"""A run's memory: open it for a spec, record the session, feed step events to the bus."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codexflow.errors import Issue, SpecError
from codexflow.events import Event, EventBus, EventName
from codexflow.memory.config import config_from_spec
from codexflow.memory.embeddings import EmbeddingUnavailable
from codexflow.memory.history import AgentSpend
from codexflow.memory.store import Memory

if TYPE_CHECKING:
    from codexflow.spec.models import Spec

# A finished unit's status -> the event that reports it.


def spec_hash(spec: Spec) -> str:
    """sha256 of the spec's canonical JSON: two runs of the same spec share it."""
    data = spec.model_dump(mode="json", by_alias=True)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


MEMORY_TOOLS = ("memory_store", "memory_get", "memory_search")  # the ones that embed
TEMPLATE_ENTRIES = 1000  # entries of the namespace a prompt template may see as `memory`


class RunMemory:
    """One run's view of memory: its session row, its events, its agents' states."""

    def __init__(self, spec: Spec, state_dir: Path, spec_path: Path, run_id: str) -> None:
        self.spec = spec
        self.run_id = run_id
        self.bus = EventBus()
        self.memory = Memory(config_from_spec(spec, state_dir, base=spec_path.parent), self.bus)
        self.bus.subscribe(self.memory.history.record)
        if any(t in MEMORY_TOOLS for agent in spec.agents.values() for t in agent.tools):
            try:  # before the run, not at the first memory_store: say now what is missing
                self.memory.embedder  # noqa: B018
            except EmbeddingUnavailable as exc:
                self.memory.close()
                raise SpecError(
                    [Issue(str(spec_path), 0, 0, "memory.embedding", exc.message)]
                ) from None

    def start(self, inputs: dict[str, Any]) -> None:
        self.memory.history.start_session(
            self.run_id, self.spec.name, spec_hash(self.spec), inputs, agents=self.spec.agents
        )
        self.bus.emit(Event("codexflow.run.started", self.run_id, payload={"spec": self.spec.name}))

    def template_values(self) -> dict[str, Any]:
        """The `memory` template variable: the namespace's entries, key -> value."""
        entries = self.memory.entries(namespace=self.memory.namespace, limit=TEMPLATE_ENTRIES)
        return {entry.key: entry.value for entry in entries}

    def finish(self, result: Any, audit: Iterable[Any] = ()) -> None:
        """Tool calls become events, the session closes, each agent gets its final state."""
        for call in audit:
            name: EventName = (
                "codexflow.tool.refused" if call.outcome == "refused" else "codexflow.tool.called"
            )
            payload = {"tool": call.tool, "outcome": call.outcome, "duration_ms": call.duration_ms}
            self.bus.emit(
                Event(name, call.run_id, call.step_id, call.agent, payload, call.started_at)
            )
        self.bus.emit(
            Event(
                "codexflow.run.finished",
                self.run_id,
                payload={"status": result.status, "reason": result.reason},
            )
        )
        spend = spend_by_agent(self.spec.agents, result.records.values())
        self.memory.history.finish_session(self.run_id, result.status, result.reason, spend)

    def abort(self, reason: str) -> None:
        spend = {agent: AgentSpend(errors=[reason]) for agent in self.spec.agents}
        self.memory.history.finish_session(self.run_id, "failed", reason, spend)

    def close(self) -> None:
        self.memory.close()


def spend_by_agent(agents: Iterable[str], records: Iterable[Any]) -> dict[str, AgentSpend]:
    """Steps, tokens and cost per agent from the run's StepRecords (runs and cache hits)."""
    spend = {agent: AgentSpend() for agent in agents}
    for record in records:
        if not record.agent or record.agent not in spend or record.status == "not_run":
            continue
        spent = spend[record.agent]
        spent.steps += 1
        spent.prompt_tokens += record.prompt_tokens
        spent.completion_tokens += record.completion_tokens
        spent.cost_usd += record.cost_usd
        if record.status == "failed":
            spent.errors.append(f"{record.id}: {record.error}"[:500])
    return spend
