"""What the gateway tracks of a run: its state, finished units, pending questions, event log.

Plain records, mutated only under the run's own lock (`Run.changed`) by the run manager.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from codexflow.errors import CodexflowError

RunState = Literal[
    "queued",
    "running",
    "succeeded",
    "failed",
    "denied",
    "interrupted",
    "budget_reached",
    "cancelled",
    "error",
]
FINAL_STATES: frozenset[str] = frozenset(
    {"succeeded", "failed", "denied", "interrupted", "budget_reached", "cancelled", "error"}
)
QuestionKind = Literal["gate", "tool", "budget"]

MAX_EVENTS_PER_RUN = 5000  # the oldest are dropped past it; the records on disk keep everything


class GatewayError(CodexflowError):
    """A request the gateway refuses: `kind` maps to an HTTP status and an MCP tool error."""

    def __init__(
        self,
        kind: Literal["not_found", "invalid", "conflict", "busy", "forbidden"],
        message: str,
    ) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Question:
    """A pending yes/no (or, for a budget, a new limit) that a run waits on."""

    id: str  # unique in its run: "1", "2", ...
    gate: str  # the task id of a gate, `tool:<name>`, or `budget`
    kind: QuestionKind
    text: str
    asked_at: float = field(default_factory=time.time)
    limit_kind: str | None = None  # budget: "usd" | "tokens"
    spent: float | None = None
    limit: float | None = None
    answer: bool | None = None
    new_limit: float | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def view(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "gate": self.gate,
            "kind": self.kind,
            "question": self.text,
            "asked_at": self.asked_at,
        }
        if self.kind == "budget":
            data.update(limit_kind=self.limit_kind, spent=self.spent, limit=self.limit)
        return data


@dataclass
class Run:
    """One apply, as the gateway tracks it. Mutated only under the manager's lock."""

    id: str
    spec: str  # the spec's name in the spec dir
    spec_path: Path
    state_dir: Path
    steps_total: int
    inputs: dict[str, Any]
    state: RunState = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    reason: str = ""
    units: dict[str, dict[str, Any]] = field(default_factory=dict)  # finished units, in order
    running: set[str] = field(default_factory=set)
    questions: dict[str, Question] = field(default_factory=dict)  # pending ones
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_EVENTS_PER_RUN))
    seq: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    cancel_requested: bool = False
    next_question: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    prefect_flow_run_id: str | None = None
    ui_url: str | None = None
    run_dir: Path | None = None
    changed: threading.Condition = field(default_factory=threading.Condition, repr=False)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def steps_done(self) -> int:
        if self.final and self.state not in ("cancelled", "error") and self.units:
            return len({unit["step"] for unit in self.units.values()})
        done = {unit["step"] for unit in self.units.values()}
        busy = {unit_step(unit_id) for unit_id in self.running}
        return len(done - busy)

    def spent(self) -> dict[str, Any]:
        paid = [u for u in self.units.values() if not u["cached"]]
        costs = [u.get("cost_usd") for u in paid]
        return {
            "tokens": sum(u["prompt_tokens"] + u["completion_tokens"] for u in paid),
            # None when some unit's model has no known price: unknown, never a made-up $0.
            "usd": None if None in costs else round(sum(c for c in costs if c is not None), 6),
        }

    def view(self, outputs: bool = True) -> dict[str, Any]:
        """The JSON a client sees for `run_status` and `GET /runs/{id}` (a consistent snapshot:
        the run's thread adds units meanwhile)."""
        with self.changed:
            return self._view(outputs)

    def _view(self, outputs: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "run_id": self.id,
            "spec": self.spec,
            "state": self.state,
            "final": self.final,
            "reason": self.reason,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "steps_total": self.steps_total,
            "steps_done": self.steps_done(),
            "running": sorted(self.running),
            "spent": self.spent(),
            "pending_approvals": [q.view() for q in self.questions.values()],
            "prefect_flow_run_id": self.prefect_flow_run_id,
            "ui_url": self.ui_url,
            "last_event": self.seq,
        }
        if outputs:
            data["steps"] = [
                {key: value for key, value in unit.items() if key != "output"}
                for unit in self.units.values()
            ]
            data["outputs"] = {
                unit_id: unit["output"]
                for unit_id, unit in self.units.items()
                if unit["status"] in ("succeeded", "cached")
            }
        return data


def unit_step(unit_id: str) -> str:
    """The plan step of a unit id: `refactor[2]` -> `refactor[*]`."""
    return re.sub(r"\[\d+\]$", "[*]", unit_id)
