"""`run_plan`: run a Plan with an executor, in a Prefect flow or locally, and record the run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from codexflow.agents.step_io import StepExecutor
from codexflow.compiler.plan import Plan
from codexflow.errors import BudgetExceeded
from codexflow.runtime.record import RunRecord, new_run_id, report
from codexflow.runtime.scheduler import Scheduler, Wrap, run_directly
from codexflow.runtime.types import (
    NullObserver,
    Observer,
    RunOptions,
    RunResult,
    RunStatus,
    StepRecord,
)

logger = logging.getLogger(__name__)
AskBudget = Callable[[BudgetExceeded], Awaitable[float | None]]


def run_plan(
    plan: Plan,
    executor: StepExecutor,
    options: RunOptions | None = None,
    observer: Observer | None = None,
) -> RunResult:
    """Run every step of `plan`, reusing cached results; never raises for a failed step
    (the result's status says it); Ctrl-C / SIGTERM stop cleanly with a resumable state."""
    options = options or RunOptions()
    observer = observer or NullObserver()
    run_id = options.run_id or new_run_id()
    record = RunRecord(options.state_dir, run_id)

    async def go(wrap: Wrap, pause: AskBudget | None = None) -> RunResult:
        started = time.perf_counter()
        scheduler = Scheduler(plan, executor, options, observer, record, wrap)
        scheduler.pause_for_budget = pause
        with (
            _stop_on_signals(scheduler, options.handle_signals),
            _stop_on_event(scheduler, options.stop_event),
        ):
            records = await scheduler.run()
        result = _result(plan, run_id, records, scheduler, time.perf_counter() - started, record)
        record.write_summary(result)
        return result

    if options.engine == "local":
        return asyncio.run(go(run_directly))

    from codexflow.runtime.prefect_env import configure_prefect, server_url, ui_url

    configure_prefect(options.state_dir, options.verbose)
    api_url = server_url()
    if api_url and (options.provider_limits or options.agent_limits):
        # Across processes sharing the server: each executor call also holds global slots.
        from codexflow.runtime.global_limits import GlobalLimits

        limits = GlobalLimits(plan, options, api_url)
        try:
            limits.setup()
            executor = limits.wrap(executor)
        except Exception as exc:  # like the flow run: the work goes on, with in-process limits
            logger.warning("Prefect global concurrency limits not set up on %s: %s", api_url, exc)
    from codexflow.runtime.prefect_flow import PrefectMirror

    # The flow run starts on its own thread while the first steps already run.
    announce = getattr(observer, "on_flow_run", None)
    mirror = PrefectMirror(
        plan.name, run_id, (lambda fid: announce(fid, ui_url(fid))) if announce else None
    )
    mirror.start()
    pause = options.budget_pause if options.budget_pause is not None else bool(server_url())

    async def pause_for_budget(exc: BudgetExceeded) -> float | None:
        await asyncio.to_thread(mirror.started.wait, 60.0)
        if mirror.flow_run_id is None:  # Prefect is not there to ask: stop cleanly
            return None
        return await asyncio.wrap_future(mirror.pause(str(exc), options.budget_wait))

    result = asyncio.run(go(mirror.wrap, pause_for_budget if pause else None))
    mirror.started.wait(timeout=60.0)
    if mirror.error is not None:  # the work is done and recorded on disk, just not in Prefect
        logger.warning(
            "Prefect did not record run %s: %s",
            run_id,
            mirror.error,
            exc_info=mirror.error if options.verbose else None,
        )
    if mirror.flow_run_id is not None:
        result.prefect_flow_run_id = mirror.flow_run_id
        result.ui_url = ui_url(mirror.flow_run_id)
        record.write_summary(result)
    mirror.finish(report(result), f"codexflow run {run_id}: {result.status}", result.status)
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
def _stop_on_signals(scheduler: Scheduler, enabled: bool) -> Iterator[None]:
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
