"""The run manager: runs of one spec queue, different specs run side by side, questions block
the run until answered or cancelled; budget pauses only where the operator allows them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from codexflow.events import Event
from codexflow.gateway import Gateway, GatewayError, RunManager


def wait_event(gateway: Gateway, run_id: str, name: str, limit: int = 200) -> dict[str, Any]:
    """Block until the run logs an event called `name` (bounded: the run's end stops it)."""
    seen = 0
    for _ in range(limit):
        events = gateway.manager.wait(run_id, seen, 30.0)
        for event in events:
            if event["event"] == name:
                return event
        if events:
            seen = events[-1]["seq"]
        elif gateway.manager.get(run_id).final:
            break
    raise AssertionError(f"run {run_id} logged no {name}")


def finish(gateway: Gateway, run_id: str) -> dict[str, Any]:
    assert gateway.manager.join(run_id, timeout=120)
    return gateway.status(run_id)


def test_runs_of_one_spec_queue_and_a_queued_run_can_be_cancelled(gateway: Gateway) -> None:
    first = gateway.apply("gated")["run_id"]
    second = gateway.apply("gated", inputs={"topic": "second"})["run_id"]
    third = gateway.apply("gated", inputs={"topic": "third"})["run_id"]
    wait_event(gateway, first, "codexflow.gate.asked")
    assert gateway.status(second)["state"] == "queued"  # the first holds the spec's state dir
    gateway.cancel(second)
    cancelled = finish(gateway, second)
    assert (
        cancelled["state"] == "cancelled" and cancelled["reason"] == "cancelled before it started"
    )
    assert cancelled["started"] is None
    gateway.approve(first, "1")  # by the question's id this time
    assert finish(gateway, first)["state"] == "succeeded"
    wait_event(gateway, third, "codexflow.gate.asked")  # the third runs once the first is done
    gateway.approve(third, "publish", approved=False)
    denied = finish(gateway, third)
    assert denied["state"] == "denied"
    assert {s["id"]: s["status"] for s in denied["steps"]}["publish"] == "skipped"
    runs_dir = gateway.manager.state_dir_for("gated") / "runs"
    assert sorted(p.name for p in runs_dir.iterdir()) == sorted([first, third])


def test_different_specs_run_side_by_side(gateway: Gateway) -> None:
    waiting = gateway.apply("gated")["run_id"]
    wait_event(gateway, waiting, "codexflow.gate.asked")
    other = gateway.apply("hello")["run_id"]
    assert finish(gateway, other)["state"] == "succeeded"  # while the gated run still waits
    assert gateway.status(waiting)["state"] == "running"
    gateway.cancel(waiting)
    assert finish(gateway, waiting)["state"] == "cancelled"


def test_max_runs_holds_back_other_specs(spec_dir: Path, tmp_path: Path) -> None:
    manager = RunManager(tmp_path / "state", engine="local", max_runs=1)
    gateway = Gateway(spec_dir, manager)
    try:
        waiting = gateway.apply("gated")["run_id"]
        wait_event(gateway, waiting, "codexflow.gate.asked")
        held = gateway.apply("hello")["run_id"]
        assert gateway.status(held)["state"] == "queued"
        gateway.cancel(waiting)
        assert finish(gateway, held)["state"] == "succeeded"
    finally:
        manager.shutdown(timeout=60)


def test_an_unanswered_question_is_a_no(spec_dir: Path, tmp_path: Path) -> None:
    manager = RunManager(tmp_path / "state", engine="local", approval_timeout=0)
    gateway = Gateway(spec_dir, manager)
    run_id = gateway.apply("gated")["run_id"]
    assert finish(gateway, run_id)["state"] == "denied"
    names = [e["event"] for e in manager.events(run_id)]
    assert "codexflow.gate.asked" in names and "codexflow.gate.denied" in names


def test_events_reach_the_bus_and_answers_are_checked(gateway: Gateway) -> None:
    seen: list[Event] = []
    gateway.manager.bus.subscribe(seen.append)
    run_id = gateway.apply("gated", approve=["publish"])["run_id"]  # approved ahead: no question
    assert finish(gateway, run_id)["state"] == "succeeded"
    assert {e.name for e in seen} >= {"codexflow.run.started", "codexflow.run.finished"}
    assert all(e.run_id == run_id for e in seen)
    with pytest.raises(GatewayError, match="no pending approval"):
        gateway.approve(run_id, "publish")
    with pytest.raises(GatewayError, match="no run"):
        gateway.status("20260101-000000.000-abcdef")


BUDGETED = """\
apiVersion: codexflow/v1
name: budgeted
defaults: {model: scripted/hello}
workspace: .
agents:
  writer: {role: coder, goal: Write short notes.}
tasks:
  draft: {agent: writer, prompt: Write one line about calculators.}
  polish: {agent: writer, depends_on: [draft], prompt: "Polish: {{ tasks.draft.output }}"}
budget: {max_tokens: 150}
"""


@pytest.mark.parametrize("allow", [False, True])
def test_a_budget_pause_is_a_question_only_where_allowed(
    spec_dir: Path, tmp_path: Path, allow: bool
) -> None:
    (spec_dir / "budgeted.yaml").write_text(BUDGETED)
    (spec_dir / "scripted" / "budgeted.yaml").write_text(
        (spec_dir / "scripted" / "hello.yaml").read_text()
    )
    manager = RunManager(tmp_path / "state", engine="local", allow_budget_raise=allow)
    gateway = Gateway(spec_dir, manager)
    try:
        run_id = gateway.apply("budgeted")["run_id"]
        if allow:
            asked = wait_event(gateway, run_id, "codexflow.gate.asked")
            assert asked["payload"]["gate"] == "budget"
            assert asked["payload"]["limit_kind"] == "tokens"
            with pytest.raises(GatewayError, match="needs `limit`"):
                gateway.approve(run_id, "budget")
            gateway.approve(run_id, "budget", limit=1000)
            assert finish(gateway, run_id)["state"] == "succeeded"
        else:
            done = finish(gateway, run_id)
            assert done["state"] == "budget_reached" and "budget" in done["reason"]
            assert "polish" not in done["outputs"]
    finally:
        manager.shutdown(timeout=60)


@pytest.mark.slow
def test_the_prefect_engine_behind_the_gateway(spec_dir: Path, tmp_path: Path) -> None:
    """The same run with Prefect: a flow run is recorded, and the gate is still answered here."""
    manager = RunManager(tmp_path / "state", engine="prefect")
    gateway = Gateway(spec_dir, manager)
    try:
        run_id = gateway.apply("gated")["run_id"]
        wait_event(gateway, run_id, "codexflow.gate.asked")
        gateway.approve(run_id, "publish")
        done = finish(gateway, run_id)
        assert done["state"] == "succeeded", done["reason"]
        assert done["outputs"]["publish"] == "published"
        assert done["prefect_flow_run_id"]
    finally:
        manager.shutdown(timeout=60)


STAMPING = """\
apiVersion: codexflow/v1
name: stamping
defaults: {model: scripted/stamping}
agents:
  clerk: {role: coder, goal: Stamp files., tools: [stamp]}
tools:
  stamp:
    kind: shell
    command: [touch, "{{ name }}"]
    description: Create an empty file.
    args:
      name: {type: string, pattern: "[a-z]+"}
    approval: true
tasks:
  work: {agent: clerk, prompt: Stamp the file `approved`.}
"""

STAMPING_SCRIPT = """\
replies:
  - step: work
    tool_calls: [{name: stamp, arguments: {name: approved}}]
  - step: work
    content: stamped
"""


@pytest.mark.parametrize("approved", [True, False])
def test_an_approval_marked_tool_asks_the_client(
    spec_dir: Path, tmp_path: Path, approved: bool
) -> None:
    (spec_dir / "stamping.yaml").write_text(STAMPING)
    (spec_dir / "scripted" / "stamping.yaml").write_text(STAMPING_SCRIPT)
    root = tmp_path / "workspaces"
    (root / "one").mkdir(parents=True)
    manager = RunManager(tmp_path / "state", engine="local")
    gateway = Gateway(spec_dir, manager, workspace_root=root)
    try:
        run_id = gateway.apply("stamping", workspace="one")["run_id"]
        asked = wait_event(gateway, run_id, "codexflow.gate.asked")
        assert (asked["payload"]["gate"], asked["payload"]["kind"]) == ("tool:stamp", "tool")
        assert "approved" in asked["payload"]["question"]  # the client sees the arguments
        gateway.approve(run_id, "tool:stamp", approved=approved)
        done = finish(gateway, run_id)
        assert done["state"] == "succeeded", done["reason"]
        assert (root / "one" / "approved").exists() is approved
        assert not (root / "approved").exists()
    finally:
        manager.shutdown(timeout=60)
