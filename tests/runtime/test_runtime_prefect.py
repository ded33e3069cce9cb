"""The Prefect engine: a flow named after the plan, a task run per unit, the report artifact.

These tests share one embedded Prefect server (started once per test session, ~10 s)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from runtime_support import FakeExecutor, six_step_plan

from codexflow.errors import BudgetExceeded, ProviderError
from codexflow.runtime import RunOptions, run_plan


async def task_runs(flow_run_id: str, expected: int) -> tuple[Any, list[Any], list[Any]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
    )

    async with get_client() as client:
        # Task-run states reach the API through events: give the server a moment to record them.
        for _ in range(100):
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            if len(runs) >= expected and all(
                r.state is not None and r.state.is_final() for r in runs
            ):
                break
            await asyncio.sleep(0.1)
        flow_run = await client.read_flow_run(flow_run_id)
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
        return flow_run, runs, artifacts


def unit_edges(result: Any) -> set[tuple[str, str]]:
    """The plan's edges between units (every unit of a dependency -> every unit of the step)."""
    units: dict[str, list[str]] = {}
    for record in result.records.values():
        units.setdefault(record.step, []).append(record.name)
    plan = six_step_plan()
    return {
        (up, down)
        for step in plan.steps
        for dep in step.depends_on
        for up in units.get(dep, [])
        for down in units.get(step.id, [])
    }


def recorded_edges(runs: list[Any]) -> set[tuple[str, str]]:
    by_id = {str(r.id): r.name for r in runs}
    return {
        (by_id[str(ref.id)], r.name)
        for r in runs
        for refs in r.task_inputs.values()
        for ref in refs
        if getattr(ref, "input_type", "") == "task_run" and str(ref.id) in by_id
    }


@pytest.mark.slow
def test_every_unit_is_a_task_run_with_the_plans_edges_and_real_times(tmp_path: Path) -> None:
    """Prefect executes the units: failed, skipped and retried units are task runs, their
    `task_inputs` are the plan's edges, their start and end are the work's own; a re-apply
    is only Cached task runs and calls nothing."""
    options = RunOptions(state_dir=tmp_path / "state", max_concurrency=4)
    executor = FakeExecutor(
        latency=0.05, fail={"a": 1}, raise_on={"join": ProviderError("provider down")}
    )
    plan = six_step_plan()
    steps = tuple(replace(s, retries=1) if s.id == "a" else s for s in plan.steps)
    plan = replace(plan, steps=steps)
    result = run_plan(plan, executor, options)
    assert result.status == "failed" and result.prefect_flow_run_id
    assert result.ui_url is None  # embedded server: no UI to link to

    flow_run, runs, artifacts = asyncio.run(task_runs(result.prefect_flow_run_id, expected=8))
    assert flow_run.name == result.run_id and flow_run.state.type.value == "FAILED"
    assert "spec:six" in flow_run.tags and "agent:worker" in flow_run.tags
    states = {r.name: (r.state.type.value, r.state.name) for r in runs}
    assert states == {
        "worker: plan": ("COMPLETED", "Completed"), "worker: work[0]": ("COMPLETED", "Completed"),
        "worker: work[1]": ("COMPLETED", "Completed"), "worker: work[2]": ("COMPLETED", "Completed"),
        "worker: a": ("COMPLETED", "Completed"), "worker: b": ("COMPLETED", "Completed"),
        "worker: join": ("FAILED", "Failed"), "worker: final": ("CANCELLED", "Skipped"),
    }  # fmt: skip
    by_name = {r.name: r for r in runs}
    assert "provider down" in (by_name["worker: join"].state.message or "")
    assert by_name["worker: a"].run_count == 2  # a Prefect retry, visible as such
    assert recorded_edges(runs) == unit_edges(result)
    for record in result.records.values():
        if record.status in ("succeeded", "failed"):
            run = by_name[record.name]
            assert abs(run.start_time.timestamp() - record.started_at) < 0.2, record.name
            assert abs(run.end_time.timestamp() - record.ended_at) < 0.2, record.name
    keys = {a.key for a in artifacts}
    assert keys == {"codexflow-six", "codexflow-six-steps"}
    report = next(a for a in artifacts if a.key == "codexflow-six")
    assert "| join | worker | failed |" in str(report.data)

    # Prefect's cache: a second run pays for the failed part only...
    executor = FakeExecutor()
    again = run_plan(plan, executor, options)
    assert again.ok and executor.calls == ["join", "final"]
    # ...and a third is nothing but Cached task runs.
    executor = FakeExecutor()
    third = run_plan(plan, executor, options)
    assert third.ok and executor.calls == []
    assert third.prefect_flow_run_id is not None
    _, runs, _ = asyncio.run(task_runs(third.prefect_flow_run_id, expected=8))
    assert len(runs) == 8 and {r.state.name for r in runs} == {"Cached"}


def test_importing_the_runtime_does_not_import_prefect() -> None:
    code = "import sys, codexflow.runtime; assert 'prefect' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.slow
def test_budget_pause_resumed_through_prefect(tmp_path: Path) -> None:
    """Headless with Prefect: the flow run pauses with a typed form; a new limit sent through
    the API (as the UI would) raises the budget and the run goes on."""
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import aresume_flow_run

    limits: list[float] = []
    flow_runs: list[str] = []

    class Announced:
        def on_step_start(self, step_id: str, name: str) -> None: ...

        def on_step_end(self, step_id: str, status: str, record: object) -> None: ...

        def on_flow_run(self, flow_run_id: str, ui_url: str | None) -> None:
            flow_runs.append(flow_run_id)

    async def resume_when_paused() -> None:
        async with get_client() as client:
            for _ in range(300):
                if flow_runs:
                    run = await client.read_flow_run(flow_runs[0])
                    if run.state is not None and run.state.is_paused():
                        await aresume_flow_run(run.id, run_input={"max_usd": 12.5})
                        return
                await asyncio.sleep(0.1)

    helper = threading.Thread(target=lambda: asyncio.run(resume_when_paused()), daemon=True)
    helper.start()
    executor = FakeExecutor(raise_on={"b": BudgetExceeded("over $5")})
    options = RunOptions(
        state_dir=tmp_path / "state",
        budget_pause=True,
        raise_budget=lambda kind, limit: limits.append(limit),
    )
    result = run_plan(six_step_plan(), executor, options, Announced())
    helper.join(timeout=30)
    assert result.ok and limits == [12.5]
    assert executor.calls.count("b") == 2


def test_an_error_before_the_first_unit_is_raised_as_itself(tmp_path: Path) -> None:
    """What fails inside the flow run before any unit (the run's session row) reaches the
    caller as itself, as with --no-prefect, not as "the flow run ended before the run"."""

    class SessionError(Exception):
        pass

    def before() -> None:
        raise SessionError("the memory database is locked")

    executor = FakeExecutor()
    with pytest.raises(SessionError, match="memory database is locked"):
        run_plan(six_step_plan(), executor, RunOptions(state_dir=tmp_path / "state"), before=before)
    assert executor.calls == []
