"""The run's events on the EventBus (codexflow/events.py): what the scheduler reports to its
observer, said once more as events for whoever listens (memory, Prefect events, the API)."""

from __future__ import annotations

from typing import Any

from codexflow.events import Event, EventBus, EventName
from codexflow.runtime.types import Observer, StepRecord, StepStatus

_ENDS: dict[str, EventName] = {
    "succeeded": "codexflow.step.finished",
    "cached": "codexflow.step.cached",
    "failed": "codexflow.step.failed",
    "skipped": "codexflow.step.skipped",
    "denied": "codexflow.gate.denied",
}


class EmittingObserver:
    """Passes everything to `inner` and emits the matching event on `bus`."""

    def __init__(
        self, inner: Observer, bus: EventBus, run_id: str, agents: dict[str, str] | None = None
    ) -> None:
        self.inner, self.bus, self.run_id = inner, bus, run_id
        self.agents = agents or {}  # step id -> agent

    def _agent(self, unit_id: str) -> str | None:
        base = unit_id.split("[", 1)[0]
        for candidate in (unit_id, f"{base}[*]", base):
            if candidate in self.agents:
                return self.agents[candidate]
        return None

    def __getattr__(self, name: str) -> Any:  # on_flow_run, on_stopping, ...
        return getattr(self.inner, name)

    def on_step_start(self, step_id: str, name: str) -> None:
        gate = name.startswith("approval: ")
        event: EventName = "codexflow.gate.asked" if gate else "codexflow.step.started"
        agent = None if gate else self._agent(step_id)
        self.bus.emit(Event(event, self.run_id, step_id, agent, {"name": name}))
        self.inner.on_step_start(step_id, name)

    def on_step_end(self, step_id: str, status: StepStatus, record: StepRecord) -> None:
        name = _ENDS.get(status)
        if record.kind == "approval" and status == "succeeded":
            name = "codexflow.gate.approved"
        if name is not None:
            payload = {
                "status": status,
                "name": record.name,
                "model": record.model,
                "prompt_tokens": record.prompt_tokens,
                "completion_tokens": record.completion_tokens,
                "tokens": record.tokens,
                "cost_usd": record.cost_usd,
                "attempts": record.attempts,
                "error": record.error,
            }
            agent = record.agent or self._agent(step_id)
            self.bus.emit(Event(name, self.run_id, step_id, agent, payload))
        self.inner.on_step_end(step_id, status, record)
