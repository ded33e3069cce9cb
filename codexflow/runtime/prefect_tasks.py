"""Units as Prefect task runs that do the work: Prefect's cache, retries, timeouts and states.

Each unit is one task run named `coder: refactor[2]`, created with the task runs of its
upstream units as `wait_for`, so its `task_inputs` are the plan's edges and its start and end
are the work's own. Its body is the shared attempt (runtime/execute.py) and logs each model
request and tool call through the task run's logger. Caching is Prefect's: the cache key is
the unit's content key (never the run id), the result a JSON record in the state dir's
result storage (runtime/store.py reads the same files). Cached units, gates and units skipped
below a failure are task runs too, each with a state and a message saying what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codexflow.agents.step_io import StepCall, StepExecutor, StepResult
from codexflow.errors import BudgetExceeded
from codexflow.runtime.durable import Journal, make_durable
from codexflow.runtime.execute import Outcome, attempt, retryable
from codexflow.runtime.runners import Decide
from codexflow.runtime.store import RESULTS_DIR, ResultStore, result_from_json, result_to_json
from codexflow.runtime.units import Unit

logger = logging.getLogger(__name__)


@dataclass
class _Job:
    """What the body of one unit's task run needs, looked up by the unit id parameter (task
    parameters stay two short strings: Prefect walks them to find upstream futures)."""

    unit: Unit
    call: StepCall
    key: str
    journal: Journal | None
    task_run_id: Any = None
    attempts: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    result: StepResult | None = None
    budget: BudgetExceeded | None = None
    errors: list[BaseException] = field(default_factory=list)


class PrefectRunner:
    """Runs units as task runs of the current flow run (call inside the flow's event loop)."""

    def __init__(
        self,
        plan_name: str,
        executor: StepExecutor,
        state_dir: Path,
        fresh: bool = False,
        limits: Any = None,
        result_storage: Any = None,
    ) -> None:
        from prefect import task
        from prefect.cache_policies import NONE
        from prefect.serializers import JSONSerializer

        make_durable(executor)
        self.plan_name, self.executor, self.state_dir = plan_name, executor, Path(state_dir)
        self.fresh, self.limits = fresh, limits
        self.store = ResultStore(state_dir)
        self.jobs: dict[str, _Job] = {}
        self.task_runs: dict[str, Any] = {}  # unit id -> its final state (an upstream for others)
        # A path is a local file system result storage (an unsaved block is refused); a saved
        # block's slug (`s3-bucket/cache`) puts the cache where several machines share it.
        storage = result_storage or (self.state_dir / RESULTS_DIR).resolve()
        # No object encoder/decoder: a model's answer can never make a cache read import code.
        serializer = JSONSerializer(object_encoder=None, object_decoder=None)
        jobs = self.jobs

        async def run_unit(unit: str, key: str, name: str) -> dict[str, Any]:
            return await self._body(jobs[unit])

        async def gate(unit: str, question: str) -> Any:
            return await self._gate_body(unit)

        async def skipped(unit: str, reason: str) -> Any:
            from prefect.states import Cancelled

            return Cancelled(name="Skipped", message=reason)

        self._unit_task: Any = task(
            name="unit",
            task_run_name="{name}",  # the unit's name (`coder: refactor[2]`), a parameter
            cache_key_fn=_cache_key,
            persist_result=True,
            result_storage=storage,
            result_serializer=serializer,
            cache_result_in_memory=False,
            log_prints=False,
        )(run_unit)
        self._gate_task: Any = task(name="approval", persist_result=False, cache_policy=NONE)(gate)
        self._skip_task: Any = task(name="skipped", persist_result=False, cache_policy=NONE)(
            skipped
        )
        self._gates: dict[str, tuple[Unit, Decide]] = {}  # gate unit id -> (unit, its decider)
        self._option_tasks: dict[tuple[Any, ...], Any] = {}  # a step's options -> its task
        self._running: dict[Any, _Job] = {}  # task run id -> its job (for the retry condition)

        def may_heal(task: Any, task_run: Any, state: Any) -> bool:
            return self._may_heal(task_run, state)

        # A plain function: Prefect calls `retry_condition_fn` only if `inspect.isfunction`
        # (a bound method is silently taken for "never retry").
        self._retry_condition = may_heal

    def _task_for(self, unit: Unit) -> Any:
        """The Prefect task for a unit: one per set of options (retries, delays, timeout,
        cache), so most plans build one or two. A task's name shows nowhere once its runs are
        named (the unit's name is the task run's), and `with_options` per unit cost a few
        percent of the run's CPU."""
        from prefect.tasks import exponential_backoff

        step = unit.step
        options = (step.retries, step.retry_delay, step.timeout, step.cache)
        task = self._option_tasks.get(options)
        if task is None:
            task = self._unit_task.with_options(
                retries=step.retries,
                retry_delay_seconds=exponential_backoff(step.retry_delay)
                if step.retry_delay
                else 0,
                retry_jitter_factor=0.5 if step.retry_delay else None,
                retry_condition_fn=self._retry_condition,
                timeout_seconds=step.timeout or None,
                refresh_cache=self.fresh,
                cache_key_fn=_cache_key if step.cache else _no_cache,
                persist_result=step.cache,
            )
            self._option_tasks[options] = task
        return task

    def _may_heal(self, task_run: Any, state: Any) -> bool:
        """Prefect retries a failed attempt only for errors that may heal (runtime/execute)."""
        error = state.data if isinstance(state.data, BaseException) else None
        job = self._running.get(task_run.id)
        if error is None and job is not None and job.errors:
            error = job.errors[-1]
        return error is None or retryable(error)

    # -- the runner interface -------------------------------------------------------------------
    async def execute(self, unit: Unit, call: StepCall, key: str, upstream: list[str]) -> Outcome:
        step = unit.step
        journal = Journal.for_key(self.state_dir, key) if step.cache else None
        if journal is not None and self.fresh:
            journal.discard()
        job = _Job(unit, call, key, journal)
        self.jobs[unit.id] = job
        task = self._task_for(unit)
        try:
            state = await task(
                unit=unit.id,
                key=key,
                name=unit.name,
                wait_for=self._edges(upstream),
                return_state=True,
            )
        finally:
            self.jobs.pop(unit.id, None)
            self._running.pop(job.task_run_id, None)
        self.task_runs[unit.id] = state
        attempts = max(job.attempts, 1 if state.name == "Cached" else job.attempts)
        if job.budget is not None:
            return Outcome("budget", error=job.budget, attempts=attempts)
        if state.is_completed():
            result = job.result
            if result is None:  # Cached: the body did not run; read the stored record
                result = self.store.get(key)
                if result is None:
                    result = result_from_json(await state.aresult(raise_on_failure=False))
            if result is None:
                return Outcome(
                    "failed", error=RuntimeError("no result recorded"), attempts=attempts
                )
            if journal is not None:
                journal.discard()
            if job.attempts == 0:
                return Outcome("cached", result=result)
            return Outcome("succeeded", result, None, job.attempts, job.started_at, job.ended_at)
        error = job.errors[-1] if job.errors else None
        if error is None or (state.message and "timeout" in state.message.lower()):
            error = RuntimeError(state.message or state.name)
        return Outcome("failed", None, error, attempts, job.started_at, job.ended_at)

    async def gate(self, unit: Unit, upstream: list[str], decide: Decide) -> Outcome:
        self._gates[unit.id] = (unit, decide)
        task = self._gate_task.with_options(
            name=f"approval: {unit.step.task}", task_run_name=unit.name
        )
        try:
            state = await task(
                unit=unit.id,
                question=f"approve task {unit.step.task}?",
                wait_for=self._edges(upstream),
                return_state=True,
            )
        finally:
            self._gates.pop(unit.id, None)
        self.task_runs[unit.id] = state
        if state.is_completed():
            return Outcome("succeeded", attempts=1)
        if state.name == "Denied":
            return Outcome(
                "denied", error=RuntimeError(state.message or "not approved"), attempts=1
            )
        return Outcome("failed", error=RuntimeError(state.message or state.name), attempts=1)

    async def skip(self, unit_id: str, name: str, upstream: list[str], reason: str) -> None:
        task = self._skip_task.with_options(name="skipped", task_run_name=name)
        with contextlib.suppress(Exception):  # history only: the run goes on regardless
            self.task_runs[unit_id] = await task(
                unit=unit_id, reason=reason, wait_for=self._edges(upstream), return_state=True
            )

    # -- task bodies ----------------------------------------------------------------------------
    async def _body(self, job: _Job) -> Any:
        from prefect import get_run_logger
        from prefect.context import TaskRunContext

        job.attempts += 1
        if job.started_at is None:
            job.started_at = time.time()
            context = TaskRunContext.get()
            if context is not None:
                job.task_run_id = context.task_run.id
                self._running[job.task_run_id] = job
        log = get_run_logger()
        if job.attempts > 1:
            log.info("attempt %d of %s", job.attempts, job.unit.id)
        hold = self.limits.hold(job.unit.step) if self.limits is not None else None
        if hold is not None:  # global slots are taken and given back on this side of the thread:
            await asyncio.to_thread(hold.__enter__)  # a timed-out attempt frees them at once
        try:
            result = await attempt(self.executor, job.call, job.unit.id, job.journal, log)
        except BudgetExceeded as exc:
            # Raised, not returned as a state: nothing is cached for the key, and the unit is
            # submitted again as a new task run if the budget is raised.
            job.budget = exc
            log.warning("budget reached: %s", exc)
            raise
        except asyncio.CancelledError:  # a timeout or a cancel: Prefect's state says which
            raise
        except Exception as exc:
            job.errors.append(exc)
            raise
        finally:
            job.ended_at = time.time()
            if hold is not None:
                await asyncio.shield(asyncio.to_thread(hold.__exit__, None, None, None))
        job.result = result
        cost = f"${result.cost_usd:.6f}"
        log.info(
            "%s: %d model request(s), %d tool call(s), %d tokens, %s",
            job.unit.id,
            result.llm_calls,
            result.tool_calls,
            result.prompt_tokens + result.completion_tokens,
            cost,
        )
        return result_to_json(result)

    async def _gate_body(self, unit_id: str) -> Any:
        from prefect import get_run_logger
        from prefect.states import Cancelled, Completed

        unit, decide = self._gates[unit_id]
        approved, how = await decide(unit.step)
        get_run_logger().info("gate %s: %s", unit_id, how)
        if approved:
            return Completed(message=how)
        return Cancelled(name="Denied", message=how)

    def _edges(self, unit_ids: list[str]) -> list[Any]:
        """`wait_for` for a unit whose upstream units are done (the scheduler submits it only
        then), skipped ones included: each upstream task run's id, for its `task_inputs` (the
        UI's edges), in a shape Prefect records without reading its result back or judging
        it. Given the final states themselves, Prefect resolves each one's result, stored on
        disk, through a blocking call from the event loop: a sink below 98 units then started
        seconds after the last of them."""
        from prefect import allow_failure
        from prefect.client.schemas.objects import StateDetails
        from prefect.states import Pending

        edges = []
        for unit_id in unit_ids:
            state = self.task_runs.get(unit_id)
            run_id = state.state_details.task_run_id if state is not None else None
            if run_id is not None:
                # An unfinished upstream under allow_failure is waved through as it is.
                marker: Any = Pending(
                    name="NotReady", state_details=StateDetails(task_run_id=run_id)
                )
                edges.append(allow_failure(marker))
        return edges


def _cache_key(context: Any, parameters: dict[str, Any]) -> str:
    return str(parameters["key"])


def _no_cache(context: Any, parameters: dict[str, Any]) -> None:
    return None
