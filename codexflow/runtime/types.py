"""Runtime types: what a run is asked to do (RunOptions), what it reports (RunResult), who watches."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from codexflow.compiler.plan import Step
from codexflow.errors import BudgetExceeded
from codexflow.events import EventBus

# succeeded/cached: the unit has an output. denied: an approval gate said no.
# skipped: an upstream unit failed or was denied. not_run: the run stopped before it.
StepStatus = Literal["succeeded", "cached", "failed", "denied", "skipped", "not_run"]

# succeeded: every unit has an output. failed: a unit failed. denied: a gate said no (and none
# failed). interrupted: a signal or a cancel stopped the run; budget_reached: the budget did
# (and was not raised). A re-run resumes either.
RunStatus = Literal["succeeded", "failed", "denied", "interrupted", "budget_reached"]

Engine = Literal["prefect", "local"]


class Observer(Protocol):
    """Live progress: the CLI implements it with rich. Called on the run's event loop thread.

    Optional: `on_flow_run(flow_run_id: str, ui_url: str | None)`, called from Prefect's thread
    as soon as the Prefect flow run exists (to print the run id and the UI link early).
    """

    def on_step_start(self, step_id: str, name: str) -> None: ...

    def on_step_end(self, step_id: str, status: StepStatus, record: StepRecord) -> None: ...


class NullObserver:
    """An observer that ignores everything."""

    def on_step_start(self, step_id: str, name: str) -> None:
        return None

    def on_step_end(self, step_id: str, status: StepStatus, record: StepRecord) -> None:
        return None


@dataclass
class RunOptions:
    """How to run a plan. Callbacks may block (they run in a worker thread)."""

    state_dir: Path = Path(".codexflow")
    max_concurrency: int | None = 8  # None: unbounded
    agent_limits: dict[str, int] = field(default_factory=dict)  # agent -> replicas
    # provider (the model string's prefix, `openai` of `openai/gpt-4o`) -> max_concurrency
    provider_limits: dict[str, int] = field(default_factory=dict)
    fresh: bool = False  # ignore cached results (new results are still stored)
    approve: frozenset[str] = frozenset()  # task ids (or step ids) approved ahead of time
    # Interactive approval: step -> yes/no. None means headless: deny unless in `approve`.
    ask_approval: Callable[[Step], bool] | None = None
    # Budget reached: the exception -> a new limit, or None to stop cleanly.
    on_budget: Callable[[BudgetExceeded], float | None] | None = None
    # The ledger's hook for a new limit: (limit kind "usd" | "tokens", new limit), the shape
    # of `providers.ledger.Ledger.raise_limit`, which can be passed as it is.
    raise_budget: Callable[[str, float], None] | None = None
    # Without `on_budget`: pause the Prefect flow run and wait for a new limit typed into the
    # Prefect UI. None: only when a Prefect server is configured (PREFECT_API_URL).
    budget_pause: bool | None = None
    # Headless gates: pause the Prefect flow run with an approve/deny form. None: only when a
    # Prefect server is configured (PREFECT_API_URL).
    gate_pause: bool | None = None
    budget_wait: float = 3600.0  # seconds a paused run waits for an answer, then stops
    # Provider and agent limits also as Prefect global concurrency limits (across processes).
    global_limits: bool = True
    engine: Engine = "prefect"
    verbose: bool = False
    run_id: str | None = None  # generated when None
    grace_seconds: float = 30.0  # after SIGINT/SIGTERM: how long running steps may finish
    handle_signals: bool = True  # only effective on the main thread
    memory: dict[str, Any] = field(default_factory=dict)  # the `memory` template variable
    # Set from any thread to stop the run like a first Ctrl-C (the MCP server's and the HTTP
    # API's cancel): nothing new starts, running units may land within `grace_seconds`.
    stop_event: threading.Event | None = None
    # Every step, gate and budget event of the run (codexflow/events.py), for listeners:
    # the memory database, Prefect events, the MCP server and HTTP API.
    events: EventBus | None = None


@dataclass
class StepRecord:
    """What happened to one unit (a step, or one item of a fan-out step)."""

    id: str  # unit id: the step id, or `refactor[2]` for an item
    step: str  # the plan step id
    task: str
    kind: str
    agent: str | None
    name: str  # the Prefect task run name, `coder: refactor[2]`
    status: StepStatus = "not_run"
    duration: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True  # False: a model without a known price; cost_usd is then 0
    model: str = ""
    cached: bool = False
    attempts: int = 0
    error: str = ""
    output: Any = None
    index: int | None = None
    started_at: float | None = None  # wall clock (epoch seconds) of the first attempt's start
    ended_at: float | None = None  # wall clock of its end

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def summary(self) -> dict[str, Any]:
        """The JSON summary row (the output itself lives in steps/<id>.json)."""
        return {
            "id": self.id,
            "step": self.step,
            "task": self.task,
            "kind": self.kind,
            "agent": self.agent,
            "name": self.name,
            "status": self.status,
            "duration": round(self.duration, 4),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": self.cost_usd if self.cost_known else None,  # null: unknown
            "cost_known": self.cost_known,
            "model": self.model,
            "cached": self.cached,
            "attempts": self.attempts,
            "error": self.error,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
        }


@dataclass
class RunResult:
    """The outcome of `run_plan`: per-unit records in plan order and the run's status."""

    plan: str
    run_id: str
    status: RunStatus
    records: dict[str, StepRecord]
    outputs: dict[str, Any]  # task id -> output (`tasks.<id>.output`), for finished tasks
    duration: float
    run_dir: Path
    prefect_flow_run_id: str | None = None
    ui_url: str | None = None
    reason: str = ""  # why the run stopped early, when it did

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def executed(self) -> int:
        """Units that called the executor in this run (not cached)."""
        return sum(
            1
            for r in self.records.values()
            if r.kind != "approval" and r.status in ("succeeded", "failed") and not r.cached
        )
