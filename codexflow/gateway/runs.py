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
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from codexflow.errors import BudgetExceeded, CodexflowError
from codexflow.events import Event, EventBus, EventName
from codexflow.gateway.tracked import (
    GatewayError,
    Question,
    QuestionKind,
    Run,
    RunState,
)

if TYPE_CHECKING:
    from codexflow.api import ApplyOptions
    from codexflow.runtime.types import RunResult, StepRecord, StepStatus

__all__ = ["GatewayError", "Question", "Run", "RunManager"]

MAX_FINISHED_RUNS = 200  # finished runs kept in memory; older ones remain on disk
MAX_QUEUED_RUNS = 32

_GATE = re.compile(r"^Approve task `([^`]+)`")
_TOOL = re.compile(r"^Allow the tool `([^`]+)`")


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
    ) -> None:
        self.state_dir = Path(state_dir)
        self.engine = engine
        self.max_runs = max(1, max_runs)
        self.allow_budget_raise = allow_budget_raise
        self.approval_timeout = approval_timeout
        self.bus = bus or EventBus()
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
