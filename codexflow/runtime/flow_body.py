"""The body of the `apply-spec` flow run: the scheduler on the flow's event loop, every unit a
task run, pauses (gates, budget) as Prefect forms, cancel from Prefect, the report artifacts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from codexflow.runtime.flow import PreparedRun, wait_recorded, watch_cancellation
from codexflow.runtime.prefect_env import server_url, ui_url
from codexflow.runtime.prefect_events import subscribe_prefect_events
from codexflow.runtime.prefect_pause import ask_budget, ask_gate
from codexflow.runtime.prefect_tasks import PrefectRunner
from codexflow.runtime.record import RunRecord, report, summary
from codexflow.runtime.run import drive
from codexflow.runtime.scheduler import Scheduler

logger = logging.getLogger(__name__)


async def execute_in_flow(prepared: PreparedRun) -> Any:
    from prefect.context import TagsContext, get_run_context
    from prefect.states import Cancelled, Completed, Failed

    flow_run = get_run_context().flow_run  # type: ignore[union-attr]
    assert flow_run is not None
    flow_run_id = str(flow_run.id)
    options, plan = prepared.options, prepared.plan
    announce = getattr(prepared.observer, "on_flow_run", None)
    if announce is not None:
        with contextlib.suppress(Exception):  # an observer's bug must not stop the run
            announce(flow_run_id, ui_url(flow_run_id))
    limits = _global_limits(prepared)
    runner = PrefectRunner(plan.name, prepared.executor, options.state_dir, options.fresh, limits)
    record = RunRecord(options.state_dir, prepared.run_id)
    has_server = server_url() is not None
    pause_budget = options.budget_pause if options.budget_pause is not None else has_server
    pause_gates = options.gate_pause if options.gate_pause is not None else has_server
    watchers: list[asyncio.Task[Any]] = []

    def hook(scheduler: Scheduler) -> None:
        if pause_budget:
            scheduler.pause_for_budget = lambda exc: ask_budget(exc, options.budget_wait)
        if pause_gates:
            scheduler.pause_for_gate = lambda step, text: ask_gate(step, text, options.budget_wait)
        if has_server:
            watchers.append(
                asyncio.ensure_future(
                    watch_cancellation(
                        flow_run_id, lambda: scheduler.request_stop("cancelled in Prefect")
                    )
                )
            )

    # Every codexflow event also as a Prefect event (the UI's feed, automations), sent from
    # inside the flow run so that Prefect relates it to this flow run.
    unsubscribe = (
        subscribe_prefect_events(options.events, spec=plan.name)
        if options.events is not None
        else None
    )
    if prepared.before is not None:  # e.g. the memory session's `run.started`, now in the feed
        try:
            prepared.before()
        except BaseException as exc:  # e.g. a memory database newer than this codexflow
            prepared.error = exc
            if unsubscribe is not None:
                unsubscribe()
            raise
    try:
        # Task runs carry no tags (the flow run does): Prefect takes a tag concurrency slot
        # through the API for every tagged task run, one request at a time, limit or not;
        # inherited from the flow run, that held 98 ready units back for 0.2–2.7 s.
        with TagsContext(current_tags=set()):
            result = await drive(plan, runner, options, prepared.observer, record, prepare=hook)
    finally:
        for watcher in watchers:
            watcher.cancel()
    result.prefect_flow_run_id = flow_run_id
    result.ui_url = ui_url(flow_run_id)
    record.write_summary(result)
    prepared.result = result
    if prepared.after is not None:
        prepared.after(result)  # the session's run.finished and tool events still reach Prefect
    if unsubscribe is not None:
        unsubscribe()
    with contextlib.suppress(Exception):  # history is a convenience, never a failure
        await _publish(plan.name, result)
        await wait_recorded(flow_run_id, len(runner.task_runs), timeout=10.0)
    description = f"codexflow run {result.run_id}: {result.status}"
    if result.reason:
        description += f" ({result.reason})"
    data = summary(result)
    if result.status == "succeeded":
        return Completed(message=description, data=data)
    if result.status in ("interrupted", "budget_reached"):  # resumable: a re-apply goes on
        return Cancelled(message=description, data=data)
    return Failed(message=description, data=data)


def _global_limits(prepared: PreparedRun) -> Any:
    """Provider and agent limits as Prefect global concurrency limits, so that runs sharing a
    server stay within them together. Not in embedded mode: its server keeps leases in memory,
    so a slot held by a killed run could never be given back (measured: the next run waited
    forever), and nothing else shares that server's limits anyway."""
    options = prepared.options
    if not (options.provider_limits or options.agent_limits) or not options.global_limits:
        return None
    if server_url() is None:
        return None
    from codexflow.runtime.global_limits import GlobalLimits

    limits = GlobalLimits(prepared.plan, options, server_url() or "")
    try:
        limits.setup()
    except Exception as exc:  # the work goes on with the in-process limits
        logger.warning("Prefect global concurrency limits not set up: %s", exc)
        return None
    return limits


async def _publish(name: str, result: Any) -> None:
    """The report as a markdown artifact and the steps as a table artifact, in the flow run."""
    from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact

    key = f"codexflow-{name}"
    description = f"codexflow run {result.run_id}: {result.status}"
    await acreate_markdown_artifact(markdown=report(result), key=key, description=description)
    rows = [
        {
            "step": r.id,
            "agent": r.agent or r.kind,
            "status": r.status,
            "model": r.model,
            "tokens": r.tokens,
            "cost_usd": round(r.cost_usd, 6),
            "cached": r.cached,
            "attempts": r.attempts,
            "seconds": round(r.duration, 3),
        }
        for r in result.records.values()
    ]
    await acreate_table_artifact(table=rows, key=f"{key}-steps", description=description)
