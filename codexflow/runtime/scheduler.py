"""The dependency-driven scheduler: a unit starts when its own inputs are ready, under a cap,
longest remaining path first; failures and denials skip descendants only; stops are clean."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from codexflow.agents.step_io import StepResult
from codexflow.compiler.plan import Plan, Step
from codexflow.errors import BudgetExceeded
from codexflow.runtime.execute import POOL, Outcome
from codexflow.runtime.record import RunRecord
from codexflow.runtime.runners import UnitRunner
from codexflow.runtime.store import ResultStore
from codexflow.runtime.types import Observer, RunOptions, StepRecord, StepStatus
from codexflow.runtime.units import Unit, critical_path_lengths, descendants, expand, prepare

# Headless with Prefect: ask a person in the Prefect UI (a paused flow run with a form).
AskGate = Callable[[Step, str], Awaitable[bool | None]]


class Scheduler:
    """Decides when each unit is submitted (its own dependencies done, longest remaining path
    first, within the caps); the runner executes and records it (Prefect task runs, or
    directly). One instance per run, on the run's event loop."""

    def __init__(
        self,
        plan: Plan,
        runner: UnitRunner,
        options: RunOptions,
        observer: Observer,
        record: RunRecord,
    ) -> None:
        self.plan, self.runner, self.options, self.observer = plan, runner, options, observer
        self.record = record
        self.store = ResultStore(options.state_dir)
        self.priority = critical_path_lengths(plan)
        self.below = descendants(plan)
        self.children: dict[str, list[Step]] = {s.id: [] for s in plan.steps}
        for step in plan.steps:
            for dep in step.depends_on:
                self.children[dep].append(step)
        self.waiting = {s.id: len(s.depends_on) for s in plan.steps}  # unfinished dependencies
        self.outputs: dict[str, Any] = {}  # step id -> output, for finished steps
        self.items: dict[str, list[Any]] = {}  # fan-out step -> item outputs by index
        self.open: dict[str, int] = {}  # step id -> units not finished yet
        self.broken: set[str] = set()  # steps failed or denied: what is below them is skipped
        self.records: dict[str, StepRecord] = {
            s.id: self._record(Unit(s.id, s)) for s in plan.steps
        }
        self.prepare: deque[Step] = deque()  # steps whose dependencies are all done
        self.ready: list[tuple[int, int, Unit, Any, str]] = []  # (-priority, seq, unit, call, key)
        self.seq = itertools.count()
        self.running = 0
        self.in_flight: set[str] = set()  # unit ids running now
        self.busy: dict[str, int] = {}  # "agent:coder" / "provider:openai" -> units running
        self.blocked: list[tuple[Unit, Any, str]] = []  # units stopped by the budget
        self.budget_error: BaseException | None = None
        # Set by the Prefect flow: pause the flow run and wait for an answer typed into the UI.
        self.pause_for_budget: Callable[[BudgetExceeded], Awaitable[float | None]] | None = None
        self.pause_for_gate: AskGate | None = None
        self.units: dict[str, list[str]] = {}  # step id -> its unit ids (for upstream edges)
        self.asking = 0  # approval questions in flight
        self.stop_reason = ""
        self.deadline: float | None = None  # when a stopped run stops waiting for running units
        self.wake = asyncio.Event()
        self.approval_lock = asyncio.Lock()
        self.tasks: set[asyncio.Task[None]] = set()

    # -- public -------------------------------------------------------------------------------
    def request_stop(self, reason: str) -> None:
        """No new units are admitted; running ones may finish within the grace period."""
        if not self.stop_reason:
            self.stop_reason = reason
            self.deadline = time.monotonic() + self.options.grace_seconds
        self.wake.set()

    def running_names(self) -> list[str]:
        """The units running now (what a stopping run waits for)."""
        return [r.name for r in self.records.values() if r.id in self.in_flight]

    def hurry(self) -> None:
        """Stop waiting for running units (a second Ctrl-C)."""
        self.deadline = time.monotonic()
        self.wake.set()

    async def run(self) -> dict[str, StepRecord]:
        POOL.ensure(min(self.options.max_concurrency or len(self.plan.steps), 256))
        self.prepare.extend(step for step in self.plan.steps if self.waiting[step.id] == 0)
        while True:
            while self.prepare:  # a queue, not recursion: a long chain of cache hits stays flat
                self._step_ready(self.prepare.popleft())
            self._admit()
            if self.running == 0 and self.asking == 0:
                if self.blocked and not self.stop_reason:
                    await self._ask_budget()
                    continue
                if not self.ready or self.stop_reason:
                    break
            timeout = None if self.deadline is None else max(0.0, self.deadline - time.monotonic())
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except TimeoutError:
                break  # grace period over: what still runs is reported as not run
            self.wake.clear()
        return self._final_records()

    # -- readiness ----------------------------------------------------------------------------
    def _record(self, unit: Unit) -> StepRecord:
        step = unit.step
        return StepRecord(
            id=unit.id, step=step.id, task=step.task, kind=step.kind, agent=step.agent,
            name=unit.name, index=unit.index,
        )  # fmt: skip

    def _step_ready(self, step: Step) -> None:
        """All dependencies done: expand the step into units; serve cache hits and gates now."""
        try:
            units = expand(self.plan, step, self.outputs, self.options.memory)
        except Exception as exc:
            self._fail_step(step, self.records[step.id], f"cannot expand for_each: {exc}")
            return
        if step.for_each is not None:
            self.items[step.id] = [None] * len(units)
            if not units:  # an empty fan-out is done at once, with an empty list as output
                record = self.records[step.id]
                record.status, record.output = "succeeded", []
                self._step_done(step)
                return
            del self.records[step.id]
            for unit in units:
                self.records[unit.id] = self._record(unit)
        self.open[step.id] = len(units)
        self.units[step.id] = [unit.id for unit in units]
        for unit in units:
            if step.kind == "approval":
                self.asking += 1
                self._spawn(self._approve(unit))
                continue
            try:
                call, key = prepare(
                    self.plan, unit, self.outputs, self.options.memory, self.record.run_id
                )
            except Exception as exc:
                self._finish(unit, "failed", error=f"cannot render prompt: {exc}")
                continue
            if not self.options.fresh and step.cache and self.store.has(key):
                # Known answer: no slot, no wait; the runner still records it (a Cached task run).
                self.running += 1
                self._spawn(self._run_unit(unit, call, key, limited=False))
            else:
                heapq.heappush(
                    self.ready, (-self.priority[step.id], next(self.seq), unit, call, key)
                )

    def upstream(self, step: Step) -> list[str]:
        """The units this step's units wait for: every unit of every dependency."""
        return [unit for dep in step.depends_on for unit in self.units.get(dep, [dep])]

    async def _approve(self, unit: Unit) -> None:
        self.observer.on_step_start(unit.id, unit.name)
        try:
            outcome = await self.runner.gate(unit, self.upstream(unit.step), self._decide)
        except Exception as exc:  # the runner itself broke: the gate is not passed
            outcome = Outcome("failed", error=exc, attempts=1)
        finally:
            self.asking -= 1
            self.wake.set()
        if outcome.kind == "succeeded":
            self._finish(unit, "succeeded", result=StepResult(output=True))
        elif outcome.kind == "denied":
            self._finish(unit, "denied", error=str(outcome.error or "not approved"))
        else:
            self._finish(unit, "failed", error=f"approval failed: {outcome.error}")

    async def _decide(self, step: Step) -> tuple[bool, str]:
        """Whether a gate passes, and who said so."""
        if step.task in self.options.approve or step.id in self.options.approve:
            return True, "approved ahead (--approve)"
        async with self.approval_lock:  # one question at a time
            if self.options.ask_approval is not None:
                answer = bool(await asyncio.to_thread(self.options.ask_approval, step))
                return answer, "approved at the terminal" if answer else "denied at the terminal"
            if self.pause_for_gate is not None:
                reply = await self.pause_for_gate(step, self._gate_summary(step))
                if reply is not None:
                    return reply, "approved in Prefect" if reply else "denied in Prefect"
                return False, "no answer in Prefect before the wait ran out"
        return False, "not approved (headless: name it with --approve)"

    def _gate_summary(self, step: Step) -> str:
        """What a person approves: the gated task, its agent and prompt, what it is given."""
        gated = [s for s in self.plan.steps if step.id in s.depends_on]
        lines = []
        for target in gated:
            lines.append(f"task {target.task} (agent {target.agent or target.kind})")
            if target.prompt:
                lines.append(f"prompt: {target.prompt[:600]}")
            for dep in target.context:
                if dep in self.outputs:
                    lines.append(f"input {dep}: {str(self.outputs[dep])[:300]}")
        return "\n".join(lines) or f"gate {step.id}"

    # -- running ------------------------------------------------------------------------------
    def _admit(self) -> None:
        """Start ready units, longest remaining path first, within the run's cap and the
        per-agent (replicas) and per-provider limits; a unit held by its agent's limit does
        not hold back the units behind it."""
        cap = self.options.max_concurrency
        held: list[tuple[int, int, Unit, Any, str]] = []
        while self.ready and not self.stop_reason and not self.blocked:
            if cap is not None and self.running >= cap:
                break
            entry = heapq.heappop(self.ready)
            unit = entry[2]
            keys = self._limit_keys(unit.step)
            if any(self.busy.get(key, 0) >= limit for key, limit in keys):
                held.append(entry)
                continue
            for key, _ in keys:
                self.busy[key] = self.busy.get(key, 0) + 1
            self.running += 1
            self._spawn(self._run_unit(unit, entry[3], entry[4], limited=True))
        for entry in held:
            heapq.heappush(self.ready, entry)

    def _limit_keys(self, step: Step) -> list[tuple[str, int]]:
        keys = []
        if step.agent is not None and step.agent in self.options.agent_limits:
            keys.append((f"agent:{step.agent}", self.options.agent_limits[step.agent]))
        provider = (step.model or "").split("/", 1)[0] if step.model and "/" in step.model else ""
        if provider in self.options.provider_limits:
            keys.append((f"provider:{provider}", self.options.provider_limits[provider]))
        return keys

    def _spawn(self, coro: Awaitable[None]) -> None:
        # Keep a reference: the loop holds tasks only weakly.
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run_unit(self, unit: Unit, call: Any, key: str, limited: bool) -> None:
        self.observer.on_step_start(unit.id, unit.name)
        started = time.perf_counter()
        self.records[unit.id].started_at = time.time()
        self.in_flight.add(unit.id)
        try:
            outcome = await self.runner.execute(unit, call, key, self.upstream(unit.step))
        except Exception as exc:  # the runner itself broke (e.g. Prefect): the unit failed
            outcome = Outcome("failed", error=exc, attempts=1)
        finally:
            self.in_flight.discard(unit.id)
            self.running -= 1
            if limited:
                for limit_key, _ in self._limit_keys(unit.step):
                    self.busy[limit_key] -= 1
            self.wake.set()
        record = self.records[unit.id]
        record.started_at = outcome.started_at or record.started_at
        record.ended_at = outcome.ended_at or time.time()
        record.duration += time.perf_counter() - started
        record.attempts += outcome.attempts
        if outcome.kind == "budget":
            self.blocked.append((unit, call, key))
            self.budget_error = outcome.error
        elif outcome.kind in ("succeeded", "cached"):
            self._finish(unit, outcome.kind, result=outcome.result)
        else:
            self._finish(unit, "failed", error=_describe(outcome.error))

    async def _ask_budget(self) -> None:
        """Every running unit has returned; ask once for more budget, then resume or stop."""
        exc = self.budget_error
        if not isinstance(exc, BudgetExceeded):
            exc = BudgetExceeded(f"budget reached at {self.blocked[0][0].id}")
        if self.options.events is not None:
            from codexflow.events import Event

            payload = {"limit_kind": exc.limit_kind, "spent": exc.spent, "limit": exc.limit,
                       "message": exc.message}  # fmt: skip
            self.options.events.emit(
                Event("codexflow.budget.reached", self.record.run_id, payload=payload)
            )
        new_limit = None
        if self.options.on_budget is not None:
            new_limit = await asyncio.to_thread(self.options.on_budget, exc)
        elif self.pause_for_budget is not None:  # headless with Prefect: ask in its UI
            new_limit = await self.pause_for_budget(exc)
        if new_limit is None:
            self.request_stop(f"budget reached and not raised: {exc}")
            return
        if self.options.raise_budget is not None:
            kind = getattr(exc, "limit_kind", "usd")  # which limit was reached: usd | tokens
            await asyncio.to_thread(self.options.raise_budget, kind, new_limit)
        for unit, call, key in self.blocked:
            heapq.heappush(
                self.ready, (-self.priority[unit.step.id], next(self.seq), unit, call, key)
            )
        self.blocked.clear()

    # -- completion ---------------------------------------------------------------------------
    def _finish(
        self, unit: Unit, status: StepStatus, result: StepResult | None = None, error: str = ""
    ) -> None:
        step, record = unit.step, self.records[unit.id]
        record.status, record.error = status, error
        record.cached = status == "cached"
        if result is not None:
            record.output, record.model = result.output, result.model
            record.prompt_tokens, record.completion_tokens = (
                result.prompt_tokens,
                result.completion_tokens,
            )
            record.cost_usd, record.cost_known = result.cost_usd, result.cost_known
            self.record.write_step(record)
        self.observer.on_step_end(unit.id, status, record)
        if status in ("failed", "denied"):
            self._fail_step(step, record, error)
            return
        if step.id in self.broken:
            return
        if unit.index is not None:
            self.items[step.id][unit.index] = record.output
        self.open[step.id] -= 1
        if self.open[step.id] == 0:
            self._step_done(step)

    def _step_done(self, step: Step) -> None:
        self.outputs[step.id] = (
            self.items[step.id] if step.for_each is not None else self.records[step.id].output
        )
        for child in self.children[step.id]:
            self.waiting[child.id] -= 1
            if self.waiting[child.id] == 0 and child.id not in self.broken:
                self.prepare.append(child)
        self.wake.set()  # new units may be ready to admit

    def _fail_step(self, step: Step, record: StepRecord, error: str) -> None:
        if record.status == "not_run":
            record.status, record.error = "failed", error
            self.observer.on_step_end(record.id, "failed", record)
        if step.id in self.broken:
            return
        self.broken.add(step.id)
        by_id = {s.id: s for s in self.plan.steps}
        for below in self.below[step.id]:
            self.broken.add(below)
            skipped = self.records.get(below)
            if skipped is not None and skipped.status == "not_run":
                skipped.status, skipped.error = "skipped", f"upstream {step.id} {record.status}"
                self.observer.on_step_end(below, "skipped", skipped)
                self._spawn(
                    self.runner.skip(
                        skipped.id, skipped.name, self.upstream(by_id[below]), skipped.error
                    )
                )

    async def settle(self, timeout: float = 10.0) -> None:
        """After `run()`: cancel the units still running (a stop past its grace period) and let
        every task end, so their Prefect task runs get a final state before the flow ends."""
        pending = [task for task in self.tasks if not task.done()]
        if not pending:
            return
        if self.stop_reason:
            for task in pending:
                task.cancel()
        await asyncio.wait(pending, timeout=timeout)

    def _final_records(self) -> dict[str, StepRecord]:
        order = {step.id: i for i, step in enumerate(self.plan.steps)}
        return dict(
            sorted(self.records.items(), key=lambda kv: (order[kv[1].step], kv[1].index or 0))
        )


def _describe(error: BaseException | None) -> str:
    return f"{type(error).__name__}: {error}" if error is not None else "failed"
