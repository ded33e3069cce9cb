"""The events a run emits (the audit trail), and the bus that hands them to whoever listens.

One vocabulary for every consumer: the run record (`audit.jsonl`), the memory database's
events table, Prefect events (the UI's event feed, automations), the MCP server and the HTTP
API's progress streams. Producers (runtime, tools, memory) call `emit`; consumers subscribe.
Nothing here imports anything heavy, so every layer may use it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

logger = logging.getLogger(__name__)

# The closed set of event names. Prefect sees them as they are (`codexflow.step.finished`).
EventName = Literal[
    "codexflow.run.started",
    "codexflow.run.finished",
    "codexflow.step.started",
    "codexflow.step.finished",
    "codexflow.step.failed",
    "codexflow.step.cached",
    "codexflow.step.skipped",
    "codexflow.step.retrying",
    "codexflow.tool.called",
    "codexflow.tool.refused",
    "codexflow.memory.written",
    "codexflow.memory.refused",
    "codexflow.budget.reached",
    "codexflow.gate.asked",
    "codexflow.gate.approved",
    "codexflow.gate.denied",
]


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened in a run. `payload` is JSON-able (tokens, cost, tool, error...)."""

    name: EventName
    run_id: str
    step_id: str | None = None
    agent: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.name,
            "run_id": self.run_id,
            "step_id": self.step_id,
            "agent": self.agent,
            "payload": self.payload,
            "time": self.time,
        }


Listener = Callable[[Event], None]


class EventBus:
    """Fan-out of events to listeners; a listener's error is logged, never raised into the run
    (an audit consumer must not fail a step). Thread-safe: tools emit from worker threads."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add a listener; returns the function that removes it."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    @contextlib.contextmanager
    def listening(self, listener: Listener) -> Iterator[None]:
        unsubscribe = self.subscribe(listener)
        try:
            yield
        finally:
            unsubscribe()

    def emit(self, event: Event) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a consumer's bug is its own
                logger.warning(
                    "event listener %r failed on %s", listener, event.name, exc_info=True
                )
