"""`run_plan`: run a Plan's units through Prefect (the `apply-spec` flow) or directly, and
record the run. Both engines share the scheduler, the units, the cache and the records."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from codexflow.agents.step_io import StepExecutor
from codexflow.compiler.plan import Plan
from codexflow.runtime.record import RunRecord, new_run_id
from codexflow.runtime.runners import LocalRunner, UnitRunner
from codexflow.runtime.scheduler import Scheduler
from codexflow.runtime.types import (
    NullObserver,
    Observer,
    RunOptions,
    RunResult,
    RunStatus,
    StepRecord,
)

logger = logging.getLogger(__name__)


def run_plan(
    plan: Plan,
    executor: StepExecutor,
    options: RunOptions | None = None,
    observer: Observer | None = None,
    parameters: dict[str, Any] | None = None,
    after: Any = None,
    before: Any = None,
) -> RunResult:
    """Run every unit of `plan`, reusing cached results; never raises for a failed step
    (the result's status says it); Ctrl-C / SIGTERM stop cleanly with a resumable state.

    `parameters` are the `apply-spec` flow run's parameters (what the Prefect UI shows);
    `before()` runs before the first unit and `after(result)` once the run is recorded, both
    inside the flow run when there is one (so their events reach Prefect's feed)."""
    options = options or RunOptions()
    observer = observer or NullObserver()
    run_id = options.run_id or new_run_id()
    if options.engine == "local":
        record = RunRecord(options.state_dir, run_id)
        runner = LocalRunner(executor, options.state_dir, options.fresh)
        if before is not None:
            before()
        result = asyncio.run(drive(plan, runner, options, observer, record))
        if after is not None:
            after(result)
        return result

    from codexflow.runtime.prefect_env import configure_prefect

    configure_prefect(options.state_dir, options.verbose)
    from codexflow.runtime.flow import run_flow

    flow_parameters = parameters or {"spec": plan.name, "inputs": dict(plan.inputs)}
    return run_flow(plan, executor, options, observer, run_id, flow_parameters, after, before)


async def drive(
    plan: Plan,
    runner: UnitRunner,
    options: RunOptions,
    observer: Observer,
    record: RunRecord,
    prepare: Any = None,
) -> RunResult:
    """Schedule the plan's units on this event loop until they are done or the run stops;
    `prepare(scheduler)` hooks the scheduler up first (the Prefect flow's pauses and cancel)."""
    started = time.perf_counter()
    if options.events is not None:  # run.started/finished are the caller's (api: the session)
        from codexflow.runtime.emit import EmittingObserver

        agents = {step.id: step.agent for step in plan.steps if step.agent}
        observer = EmittingObserver(observer, options.events, record.run_id, agents)
    scheduler = Scheduler(plan, runner, options, observer, record)
    if isinstance(runner, LocalRunner):
        runner.stopping = lambda: bool(scheduler.stop_reason)
    if prepare is not None:
        prepare(scheduler)
    with (
        _stop_on_signals(scheduler, options.handle_signals, observer),
        _stop_on_event(scheduler, options.stop_event),
    ):
        records = await scheduler.run()
        await scheduler.settle()
        records = scheduler._final_records()
    result = _result(plan, record.run_id, records, scheduler, time.perf_counter() - started, record)
    record.write_summary(result)
    return result


def _status(records: dict[str, StepRecord], stop_reason: str) -> RunStatus:
    statuses = {r.status for r in records.values()}
    if "failed" in statuses:
        return "failed"
    if stop_reason.startswith("budget reached"):
        return "budget_reached"
    if stop_reason or "not_run" in statuses:
        return "interrupted"
    if "denied" in statuses:
        return "denied"
    return "succeeded"


def _result(
    plan: Plan,
    run_id: str,
    records: dict[str, StepRecord],
    scheduler: Scheduler,
    duration: float,
    record: RunRecord,
) -> RunResult:
    outputs: dict[str, Any] = {
        task: scheduler.outputs[step_id]
        for task, step_id in plan.task_results.items()
        if step_id in scheduler.outputs
    }
    return RunResult(
        plan=plan.name,
        run_id=run_id,
        status=_status(records, scheduler.stop_reason),
        records=records,
        outputs=outputs,
        duration=duration,
        run_dir=record.dir,
        reason=scheduler.stop_reason,
    )


@contextlib.contextmanager
def _stop_on_signals(scheduler: Scheduler, enabled: bool, observer: Observer) -> Iterator[None]:
    """First SIGINT/SIGTERM: admit nothing new, let running steps land. A second: stop waiting."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    hits = {"count": 0}

    def on_signal(sig: signal.Signals) -> None:
        hits["count"] += 1
        scheduler.request_stop(f"stopped by {sig.name}")
        if hits["count"] > 1:
            scheduler.hurry()
            return
        stopping = getattr(observer, "on_stopping", None)
        if stopping is not None:  # say at once what the run now waits for
            with contextlib.suppress(Exception):
                stopping(scheduler.running_names(), scheduler.options.grace_seconds)

    for sig in previous:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, handler)


@contextlib.contextmanager
def _stop_on_event(scheduler: Scheduler, event: threading.Event | None) -> Iterator[None]:
    """`RunOptions.stop_event` set from another thread stops the run like a first SIGINT."""
    if event is None:
        yield
        return
    loop = asyncio.get_running_loop()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if event.wait(0.2):
                loop.call_soon_threadsafe(scheduler.request_stop, "cancelled")
                return

    watcher = threading.Thread(target=watch, name="codexflow-stop-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
