"""The one Prefect flow: `apply_spec` loads, compiles and runs a spec, each unit a task run.

`codexflow apply`, deployment runs (`flows/apply_spec.py:apply_spec`) and retries from the
Prefect UI all run this flow. A local apply has already built its plan and executor (with
its terminal prompts, scripts or cassettes) and hands them in through a context variable;
a deployment run builds them from the flow's parameters. Either way the flow body runs the
scheduler on the flow's event loop, and every unit is a Prefect task run (prefect_tasks.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from prefect import flow

from codexflow.agents.step_io import StepExecutor
from codexflow.compiler.plan import Plan
from codexflow.runtime.prefect_env import server_url
from codexflow.runtime.types import NullObserver, Observer, RunOptions, RunResult

logger = logging.getLogger(__name__)


@dataclass
class PreparedRun:
    """A run built before the flow starts (by `codexflow apply`), and its result afterwards."""

    plan: Plan
    executor: StepExecutor
    options: RunOptions
    observer: Observer
    run_id: str
    result: RunResult | None = None
    after: Any = None  # called with the RunResult inside the flow (e.g. write the audit trail)
    before: Any = None  # called inside the flow before the first unit (the run's session row)
    error: BaseException | None = None  # what stopped the run before its first unit
    extra_tags: list[str] = field(default_factory=list)


PREPARED: contextvars.ContextVar[PreparedRun | None] = contextvars.ContextVar(
    "codexflow_prepared_run", default=None
)


def _flow_run_name() -> str:
    prepared = PREPARED.get()
    if prepared is not None:
        return prepared.run_id
    from codexflow.runtime.record import new_run_id

    return new_run_id()


@flow(
    name="apply-spec",
    flow_run_name=_flow_run_name,
    log_prints=False,
    persist_result=False,
    validate_parameters=True,
)
async def apply_spec(
    spec: str,
    inputs: dict[str, Any] | None = None,
    workspace: str | None = None,
    state_dir: str = ".codexflow",
    approve: list[str] | None = None,
    model: str | None = None,
    fresh: bool = False,
) -> Any:
    """Apply the spec at `spec` (a path, relative to the flow's working directory) with `inputs`;
    headless: approval gates pass only when named in `approve`, or when approved in the
    Prefect UI (the flow run pauses with a form). Returns the run's summary."""
    from prefect.context import get_run_context

    prepared = PREPARED.get()
    route_run_logs(prepared.options.verbose if prepared is not None else False)
    from codexflow.runtime.flow_body import execute_in_flow

    if prepared is not None:
        return await execute_in_flow(prepared)
    # A deployment run or a retry from the UI: build it from the parameters.
    prepared, ready = _prepare_from_parameters(
        spec, inputs, workspace, state_dir, approve, model, fresh
    )
    prepared.run_id = str(get_run_context().flow_run.name)  # type: ignore[union-attr]
    prepared.before = ready.start
    with ready.locked():
        try:
            return await execute_in_flow(prepared)
        except BaseException as exc:
            ready.abort(exc)
            raise


def _prepare_from_parameters(
    spec: str,
    inputs: dict[str, Any] | None,
    workspace: str | None,
    state_dir: str,
    approve: list[str] | None,
    model: str | None,
    fresh: bool,
) -> tuple[PreparedRun, Any]:
    from pathlib import Path

    from codexflow.api import ApplyOptions, prepare_apply  # the wiring layer, imported late

    options = ApplyOptions(
        inputs=dict(inputs or {}),
        model=model,
        workspace=Path(workspace) if workspace else None,
        state_dir=Path(state_dir),
        fresh=fresh,
        approve=frozenset(approve or ()),
    )
    ready = prepare_apply(spec, options)
    prepared = PreparedRun(
        plan=ready.plan,
        executor=ready.executor,
        options=ready.run_options,
        observer=NullObserver(),
        run_id="",
        after=ready.finish,
    )
    return prepared, ready


def run_flow(
    plan: Plan,
    executor: StepExecutor,
    options: RunOptions,
    observer: Observer,
    run_id: str,
    parameters: dict[str, Any],
    after: Any = None,
    before: Any = None,
) -> RunResult:
    """Run the plan as one `apply-spec` flow run in this process; returns its RunResult."""
    from prefect import tags

    prepared = PreparedRun(plan, executor, options, observer, run_id, after=after, before=before)
    token = PREPARED.set(prepared)
    try:
        with tags(*run_tags(plan)):
            asyncio.run(_call_flow(parameters))
    finally:
        PREPARED.reset(token)
    if prepared.result is None:  # the flow could not start: say why, as --no-prefect would
        if prepared.error is not None:
            raise prepared.error
        raise RuntimeError("the Prefect flow run ended before the run started")
    return prepared.result


async def _call_flow(parameters: dict[str, Any]) -> Any:
    return await apply_spec(**parameters, return_state=True)


class _NoFailedResultWarning(logging.Filter):
    """A failed unit's exception is not a result: Prefect's JSON result storage refuses it and
    says so in a warning per failure. Nothing is lost (the state carries the error)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to write result")


def route_run_logs(verbose: bool) -> None:
    """Task-run and flow-run logs (each model request and tool call) go to the Prefect API at
    INFO, so the UI shows what each step did; on the terminal codexflow prints its own
    progress, so Prefect's copies stay off the console unless --verbose."""
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        run_logger = logging.getLogger(name)
        run_logger.setLevel(logging.INFO)
        run_logger.propagate = verbose
    states = logging.getLogger("prefect.states")
    if not any(isinstance(f, _NoFailedResultWarning) for f in states.filters):
        states.addFilter(_NoFailedResultWarning())


def run_tags(plan: Plan) -> list[str]:
    """Flow-run tags: the spec, its agents and models (filterable in the UI)."""
    tags = {f"spec:{plan.name}"}
    tags.update(f"agent:{s.agent}" for s in plan.steps if s.agent)
    tags.update(f"model:{s.model}" for s in plan.steps if s.model)
    return sorted(tags)


async def watch_cancellation(flow_run_id: str, on_cancel: Any, every: float = 1.0) -> None:
    """Cancel from the Prefect UI or CLI (`prefect flow-run cancel`): the flow run's state
    turns Cancelling on the server; stop the run like a first Ctrl-C when it does."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(Exception):  # the server away for a moment: ask again
                run = await client.read_flow_run(UUID(flow_run_id))
                if run.state is not None and run.state.type.value in ("CANCELLING", "CANCELLED"):
                    on_cancel()
                    return


async def wait_recorded(flow_run_id: str, count: int, timeout: float) -> None:
    """Embedded mode: the temporary server dies with this process, so wait (bounded) until it
    has stored every task run's final state (they travel as events, stored a moment later).
    Asks for a count, not the task runs: reading and validating a hundred task runs every few
    milliseconds cost more CPU than the server needed to store them."""
    from prefect.client.orchestration import get_client

    if server_url() is not None or count == 0:
        return
    final = ["COMPLETED", "FAILED", "CANCELLED", "CRASHED"]
    query = {
        "flow_runs": {"id": {"any_": [flow_run_id]}},
        "task_runs": {"state": {"type": {"any_": final}}},
    }
    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while time.monotonic() < deadline:
            response = await client.request("POST", "/task_runs/count", json=query)
            if int(response.json()) >= count:
                return
            await asyncio.sleep(0.05)


__all__ = ["PREPARED", "PreparedRun", "apply_spec", "run_flow"]
