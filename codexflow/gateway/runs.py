"""The run manager: applies specs in background threads, tracks each run, holds its questions.

One thread per run. Runs of the same spec share that spec's state subdirectory
(`<state_dir>/specs/<spec>/`: its cache and run records) and are queued, one at a time, so they
never share a scheduler's limits or one state dir; runs of different specs run side by side, up
to `max_runs` at once. A run's approval gates, approval-marked tools and (when the operator
allows it) budget pauses become pending questions that block the run's worker thread until a
client answers them, the run is cancelled, or `approval_timeout` passes (then: no).
"""

from __future__ import annotations

import contextlib
import itertools
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from codexflow.errors import BudgetExceeded, CodexflowError
from codexflow.events import Event, EventBus, EventName

if TYPE_CHECKING:
    from codexflow.api import ApplyOptions
    from codexflow.runtime.types import RunResult, StepRecord, StepStatus

RunState = Literal[
    "queued", "running", "succeeded", "failed", "denied", "interrupted", "cancelled", "error"
]
FINAL_STATES: frozenset[str] = frozenset(
    {"succeeded", "failed", "denied", "interrupted", "cancelled", "error"}
)
QuestionKind = Literal["gate", "tool", "budget"]

MAX_EVENTS_PER_RUN = 5000  # the oldest are dropped past it; the records on disk keep everything
MAX_FINISHED_RUNS = 200  # finished runs kept in memory; older ones remain on disk
MAX_QUEUED_RUNS = 32

_GATE = re.compile(r"^Approve task `([^`]+)`")
_TOOL = re.compile(r"^Allow the tool `([^`]+)`")

Apply = Callable[["Path", "ApplyOptions", Any], "RunResult"]


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
        return {
            "tokens": sum(u["prompt_tokens"] + u["completion_tokens"] for u in paid),
            "usd": round(sum(u["cost_usd"] for u in paid), 6),
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


class _Observer:
    """The runtime's Observer for one run: records progress and turns it into events."""

    def __init__(self, manager: RunManager, run: Run) -> None:
        self.manager, self.run = manager, run

    def on_step_start(self, step_id: str, name: str) -> None:
        with self.run.changed:
            self.run.running.add(step_id)
        self.manager.emit(self.run, "codexflow.step.started", step_id, {"name": name})

    def on_step_end(self, step_id: str, status: StepStatus, record: StepRecord) -> None:
        unit = record.summary()
        unit["status"] = status
        unit["output"] = record.output
        with self.run.changed:
            self.run.running.discard(step_id)
            self.run.units[step_id] = unit
        name: EventName = {
            "succeeded": "codexflow.step.finished",
            "cached": "codexflow.step.cached",
            "failed": "codexflow.step.failed",
            "denied": "codexflow.gate.denied",
        }.get(status, "codexflow.step.skipped")  # type: ignore[assignment]
        if status == "succeeded" and record.cached:
            name = "codexflow.step.cached"
        payload = {k: unit[k] for k in ("status", "prompt_tokens", "completion_tokens", "cost_usd")}
        payload["error"] = unit["error"]
        self.manager.emit(self.run, name, step_id, payload, agent=record.agent)

    def on_flow_run(self, flow_run_id: str, ui_url: str | None) -> None:
        with self.run.changed:
            self.run.prefect_flow_run_id, self.run.ui_url = flow_run_id, ui_url


class RunManager:
    """Starts runs in the background, tracks them, and brokers their questions to clients."""

    def __init__(
        self,
        state_dir: Path,
        *,
        engine: Literal["prefect", "local"] = "prefect",
        max_runs: int = 4,
        allow_budget_raise: bool = False,
        approval_timeout: float = 3600.0,
        bus: EventBus | None = None,
        apply: Apply | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.engine = engine
        self.max_runs = max(1, max_runs)
        self.allow_budget_raise = allow_budget_raise
        self.approval_timeout = approval_timeout
        self.bus = bus or EventBus()
        self._apply = apply
        self._lock = threading.Condition()  # guards _runs, _queue, _busy; notified on changes
        self._runs: dict[str, Run] = {}
        self._queue: list[Run] = []
        self._busy: set[str] = set()  # specs with a run in progress
        self._threads: dict[str, threading.Thread] = {}

    # -- starting ---------------------------------------------------------------------------
    def state_dir_for(self, spec: str) -> Path:
        return self.state_dir / "specs" / spec

    def start(self, spec: str, spec_path: Path, steps_total: int, options: ApplyOptions) -> Run:
        """Queue a run of an already validated and compiled spec; returns at once."""
        from codexflow.runtime.record import new_run_id

        with self._lock:
            if len(self._queue) >= MAX_QUEUED_RUNS:
                raise GatewayError(
                    "busy", f"{len(self._queue)} runs are already queued; try again later"
                )
            run = Run(
                id=new_run_id(),
                spec=spec,
                spec_path=spec_path,
                state_dir=self.state_dir_for(spec),
                steps_total=steps_total,
                inputs=dict(options.inputs),
            )
            options.run_id = run.id
            options.state_dir = run.state_dir
            options.stop_event = run.stop
            options.engine = self.engine
            options.ask = lambda text: self._ask(run, text)
            options.ask_budget = (
                (lambda exc: self._ask_budget(run, exc)) if self.allow_budget_raise else None
            )
            self._runs[run.id] = run
            self._queue.append(run)
            self._forget_old()
            thread = threading.Thread(
                target=self._work, args=(run, options), name=f"codexflow-run-{run.id}", daemon=True
            )
            self._threads[run.id] = thread
        thread.start()
        return run

    def _may_start(self, run: Run) -> bool:
        if run.spec in self._busy or len(self._busy) >= self.max_runs:
            return False
        first = next(r for r in self._queue if r.spec == run.spec)
        return first is run

    def _work(self, run: Run, options: ApplyOptions) -> None:
        with self._lock:
            while not run.stop.is_set() and not self._may_start(run):
                self._lock.wait()
            self._queue.remove(run)
            if run.stop.is_set():
                self._lock.notify_all()
                self._finish(run, "cancelled", "cancelled before it started")
                return
            self._busy.add(run.spec)
        with run.changed:
            run.state, run.started = "running", time.time()
        self.emit(run, "codexflow.run.started", None, {"spec": run.spec, "state": "running"})
        try:
            result = self._call_apply(run, options)
        except CodexflowError as exc:  # e.g. the workspace vanished: the user's input
            self._finish(run, "error", exc.message)
        except Exception as exc:  # a bug of ours: the run is over; the server goes on
            self._finish(run, "error", f"internal error: {type(exc).__name__}: {exc}")
        else:
            state: RunState = result.status
            if run.cancel_requested and result.status in ("interrupted", "denied"):
                state = "cancelled"
            with run.changed:
                run.run_dir = result.run_dir
                run.prefect_flow_run_id = result.prefect_flow_run_id or run.prefect_flow_run_id
                run.ui_url = result.ui_url or run.ui_url
                for unit_id, record in result.records.items():  # units that never started too
                    if unit_id not in run.units:
                        unit = record.summary()
                        unit["output"] = record.output
                        run.units[unit_id] = unit
            self._finish(run, state, result.reason)
        finally:
            with self._lock:
                self._busy.discard(run.spec)
                self._threads.pop(run.id, None)
                self._lock.notify_all()

    def _call_apply(self, run: Run, options: ApplyOptions) -> RunResult:
        if self._apply is not None:
            return self._apply(run.spec_path, options, _Observer(self, run))
        from codexflow.api import apply

        return apply(run.spec_path, options, _Observer(self, run))

    def _finish(self, run: Run, state: RunState, reason: str) -> None:
        with run.changed:
            run.state, run.reason, run.finished = state, reason, time.time()
            run.running.clear()
            for question in run.questions.values():  # nobody is waiting for these any more
                question.done.set()
            run.questions.clear()
        self.emit(run, "codexflow.run.finished", None, {"state": state, "reason": reason})

    def _forget_old(self) -> None:
        finished = [r for r in self._runs.values() if r.final]
        for run in finished[: max(0, len(finished) - MAX_FINISHED_RUNS)]:
            del self._runs[run.id]

    # -- events -----------------------------------------------------------------------------
    def emit(
        self,
        run: Run,
        name: EventName,
        step_id: str | None,
        payload: dict[str, Any],
        *,
        agent: str | None = None,
    ) -> None:
        """Append an event to the run's log, wake whoever waits on it, publish it on the bus."""
        event = Event(name, run.id, step_id, agent, payload)
        with run.changed:
            run.seq += 1
            data = event.to_dict()
            data["seq"] = run.seq
            run.events.append(data)
            run.changed.notify_all()
        self.bus.emit(event)

    def events(self, run_id: str, since: int = 0) -> list[dict[str, Any]]:
        run = self.get(run_id)
        with run.changed:
            return [e for e in run.events if e["seq"] > since]

    def wait(self, run_id: str, since: int, timeout: float) -> list[dict[str, Any]]:
        """Events after `since`, waiting up to `timeout` s for one; [] when none came or the
        run is over and everything was seen."""
        run = self.get(run_id)
        deadline = time.monotonic() + max(0.0, timeout)
        with run.changed:
            while run.seq <= since and not run.final:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                run.changed.wait(left)
            return [e for e in run.events if e["seq"] > since]

    # -- questions ----------------------------------------------------------------------------
    def _ask(self, run: Run, text: str) -> bool:
        """The run's `ask` callback: a pending question, answered by a client (blocks)."""
        gate_match, tool_match = _GATE.match(text), _TOOL.match(text)
        if gate_match:
            kind: QuestionKind = "gate"
            gate = gate_match.group(1)
        else:
            kind = "tool"
            gate = f"tool:{tool_match.group(1)}" if tool_match else "tool"
        question = self._pose(run, Question(str(next(run.next_question)), gate, kind, text))
        return bool(question.answer)

    def _ask_budget(self, run: Run, exc: BudgetExceeded) -> float | None:
        question = Question(
            str(next(run.next_question)),
            "budget",
            "budget",
            exc.message,
            limit_kind=exc.limit_kind,
            spent=exc.spent,
            limit=exc.limit,
        )
        question = self._pose(run, question)
        if question.answer and question.new_limit is not None and question.new_limit > exc.limit:
            return question.new_limit
        return None

    def _pose(self, run: Run, question: Question) -> Question:
        with run.changed:
            if run.stop.is_set():
                return question  # cancelled: every question is a no
            run.questions[question.id] = question
        self.emit(run, "codexflow.gate.asked", None, question.view())
        answered = question.done.wait(self.approval_timeout)
        with run.changed:
            run.questions.pop(question.id, None)
            run.changed.notify_all()
        if not answered:
            question.answer = False
        event: EventName = "codexflow.gate.approved" if question.answer else "codexflow.gate.denied"
        self.emit(run, event, None, {"id": question.id, "gate": question.gate})
        return question

    def answer(
        self, run_id: str, gate: str, approved: bool, new_limit: float | None = None
    ) -> Question:
        """Answer a pending question by its id or its gate (the oldest one with that gate)."""
        run = self.get(run_id)
        with run.changed:
            pending = list(run.questions.values())
            matches = [q for q in pending if gate in (q.id, q.gate)]
            if not matches:
                waiting = ", ".join(f"{q.id} ({q.gate})" for q in pending) or "none"
                raise GatewayError(
                    "not_found",
                    f"run {run_id} has no pending approval `{gate}` (pending: {waiting})",
                )
            question = matches[0]
            if question.kind == "budget" and approved and new_limit is None:
                raise GatewayError(
                    "invalid", "approving a budget pause needs `limit`, the new limit"
                )
            question.answer, question.new_limit = approved, new_limit
            del run.questions[question.id]
            question.done.set()
        return question

    # -- reading and stopping -------------------------------------------------------------
    def get(self, run_id: str) -> Run:
        with self._lock:
            run = self._runs.get(run_id)
        if run is None:
            raise GatewayError("not_found", f"no run `{run_id}` on this server")
        return run

    def list(self) -> list[Run]:
        with self._lock:
            return sorted(self._runs.values(), key=lambda r: r.id, reverse=True)

    def cancel(self, run_id: str) -> Run:
        """Stop a run like a first Ctrl-C: nothing new starts, running steps may land, and
        every pending question is answered no."""
        run = self.get(run_id)
        with run.changed:
            if run.final:
                return run
            run.cancel_requested = True
            run.stop.set()
            for question in run.questions.values():
                question.answer = False
                question.done.set()
        with self._lock:
            self._lock.notify_all()  # a queued run leaves the queue
        return run

    def join(self, run_id: str, timeout: float | None = None) -> bool:
        """Wait for a run's thread to end (tests, shutdown). True when it has."""
        with self._lock:
            thread = self._threads.get(run_id)
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def shutdown(self, timeout: float = 60.0) -> None:
        """Cancel every run and wait (bounded) for their threads."""
        for run in self.list():
            with contextlib.suppress(GatewayError):
                self.cancel(run.id)
        deadline = time.monotonic() + timeout
        for run in self.list():
            self.join(run.id, max(0.0, deadline - time.monotonic()))
