"""A run's memory: open it for a spec, record the session, feed step events to the bus."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codexflow.events import Event, EventBus, EventName
from codexflow.memory.config import config_from_spec
from codexflow.memory.history import AgentSpend
from codexflow.memory.store import Memory

if TYPE_CHECKING:
    from codexflow.spec.models import Spec

# A finished unit's status -> the event that reports it.
EVENT_OF_STATUS: dict[str, EventName] = {
    "succeeded": "codexflow.step.finished",
    "cached": "codexflow.step.cached",
    "failed": "codexflow.step.failed",
    "skipped": "codexflow.step.skipped",
    "denied": "codexflow.gate.denied",
}


def spec_hash(spec: Spec) -> str:
    """sha256 of the spec's canonical JSON: two runs of the same spec share it."""
    data = spec.model_dump(mode="json", by_alias=True)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def open_run_memory(spec: Spec, state_dir: Path, spec_path: Path, bus: EventBus) -> Memory:
    """The spec's memory with every event of `bus` stored in its events table."""
    memory = Memory(config_from_spec(spec, state_dir, base=spec_path.parent), bus)
    bus.subscribe(memory.history.record)
    return memory


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


class StepEvents:
    """An Observer that emits step events on the bus and passes every call on to `inner`.

    For the runtime's own events: once the runtime emits `codexflow.step.*` on the run's bus
    itself, this adapter is no longer needed.
    """

    def __init__(self, inner: Any, bus: EventBus, run_id: str, agents_of: dict[str, str]) -> None:
        self.inner = inner
        self.bus = bus
        self.run_id = run_id
        self.agents_of = agents_of  # unit or step id -> agent

    def _agent(self, step_id: str, name: str) -> str | None:
        base = step_id.split("[", 1)[0]
        for candidate in (step_id, base, f"{base}[*]"):
            if candidate in self.agents_of:
                return self.agents_of[candidate]
        return name.split(":", 1)[0].strip() if ":" in name else None

    def on_step_start(self, step_id: str, name: str) -> None:
        agent = self._agent(step_id, name)
        self.bus.emit(Event("codexflow.step.started", self.run_id, step_id, agent, {"name": name}))
        if self.inner is not None:
            self.inner.on_step_start(step_id, name)

    def on_step_end(self, step_id: str, status: str, record: Any) -> None:
        name = EVENT_OF_STATUS.get(status)
        if name is not None:
            payload = {
                "status": status,
                "tokens": record.prompt_tokens + record.completion_tokens,
                "cost_usd": record.cost_usd,
                "error": record.error,
            }
            agent = record.agent or self._agent(step_id, record.name)
            self.bus.emit(Event(name, self.run_id, step_id, agent, payload))
        if self.inner is not None:
            self.inner.on_step_end(step_id, status, record)

    def __getattr__(self, attribute: str) -> Any:  # optional hooks such as on_flow_run
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(attribute)
        return getattr(inner, attribute)
