"""`codexflow deploy` against a real Prefect server, and a real worker running the deployment."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ops_support import (
    PrefectServer,
    events,
    openai_spec,
    outside_env,
    quiet_prefect_env,
    run_cli,
    start_worker,
    state_type,
    stop_worker,
)

from tests.support.openai_server import OpenAIServer, Reply, running_openai_server

pytestmark = pytest.mark.slow

POOL = "ops-deploy"
TASKS = """\
  one: {agent: writer, prompt: "Step one about {{ inputs.topic }}."}
  two: {agent: writer, prompt: "Step two after {{ tasks.one.output }}.", depends_on: [one]}
  three: {agent: writer, prompt: "Step three after {{ tasks.one.output }}.", depends_on: [one]}
"""
INPUTS = "inputs:\n  topic: {type: string, default: cats}\n"
SCHEDULE = "schedule: {cron: '15 2 * * *', timezone: Europe/Paris}\n"


@dataclass
class Deployment:
    server: PrefectServer
    http: OpenAIServer
    project: Path
    deployment_id: str
    flow_run_id: str
    first_output: str
    second_output: str


def prompts(http: OpenAIServer) -> list[str]:
    return [str((r.json or {})["messages"][-1]["content"]) for r in http.chat_requests()]


@pytest.fixture(scope="module")
def worker(
    prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """One worker on the pool for the module (it polls every second); its log file."""
    home = tmp_path_factory.mktemp("worker")
    prefect_server.post("/work_pools/", {"name": POOL, "type": "process"})
    log = home / "worker.log"
    proc = start_worker(prefect_server, POOL, home / "prefect", log)
    try:
        yield log
    finally:
        stop_worker(proc)


def run_deployment(server: PrefectServer, deployment_id: str, log: Path) -> dict[str, Any]:
    """Ask for a run of the deployment and wait (bounded) until the worker finished it."""
    run = server.post(f"/deployments/{deployment_id}/create_flow_run", {})
    return wait_final(server, run["id"], log)


def wait_final(server: PrefectServer, flow_run_id: str, log: Path) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        run = server.flow_run(flow_run_id)
        return run if state_type(run) in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

    try:
        return dict(server.wait_for("the deployment run to end", final, timeout=240))
    except AssertionError:
        raise AssertionError(log.read_text(errors="replace")[-4000:]) from None


@pytest.fixture(scope="module")
def deployed(
    prefect_server: PrefectServer, worker: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """`codexflow deploy` twice (create, then update), then one run of it on the worker."""
    project = tmp_path_factory.mktemp("project")
    with running_openai_server() as http:
        spec = openai_spec("opsdeploy", http.url, TASKS, extra="")
        (project / "spec.yaml").write_text(spec.replace("tasks:", INPUTS + SCHEDULE + "tasks:"))
        env = prefect_server.env(project / "client-home")
        first = run_cli(
            ["deploy", "spec.yaml", "--pool", POOL, "--set", "topic=dogs"], env, project
        )
        assert first.returncode == 0, first.stdout + first.stderr
        second = run_cli(
            ["deploy", "spec.yaml", "--pool", POOL, "--set", "topic=birds", "--json"], env, project
        )
        assert second.returncode == 0, second.stdout + second.stderr
        done = json.loads(second.stdout)
        run = run_deployment(prefect_server, done["deployment_id"], worker)
        yield Deployment(prefect_server, http, project, done["deployment_id"], run["id"],
                         first.stdout, second.stdout)  # fmt: skip


def test_deploy_registers_the_spec_on_a_process_pool_with_its_schedule(
    deployed: Deployment,
) -> None:
    server = deployed.server
    assert "created deployment apply-spec/opsdeploy" in deployed.first_output
    assert f"prefect worker start --pool {POOL}" in deployed.first_output
    deployment = server.get("/deployments/name/apply-spec/opsdeploy")
    assert deployment["id"] == deployed.deployment_id  # the second deploy updated it in place
    assert deployment["work_pool_name"] == POOL
    assert server.get(f"/work_pools/{POOL}")["type"] == "process"
    # The schedule is the spec's cron, once (not one more per deploy).
    schedules = [s["schedule"] for s in deployment["schedules"]]
    assert schedules == [{"cron": "15 2 * * *", "timezone": "Europe/Paris", "day_or": True}]
    assert deployment["parameters"] == {
        "spec": "spec.yaml",
        "inputs": {"topic": "birds"},
        "state_dir": ".codexflow",
    }
    assert sorted(deployment["tags"]) == ["codexflow", "spec:opsdeploy"]
    assert deployment["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(deployed.project)}}
    ]


def test_a_worker_runs_the_deployment_to_completion(deployed: Deployment) -> None:
    run = deployed.server.flow_run(deployed.flow_run_id)
    assert state_type(run) == "COMPLETED", run["state"]
    assert run["deployment_id"] == deployed.deployment_id
    assert run["parameters"]["inputs"] == {"topic": "birds"}
    # Every step asked the real HTTP server once, with the deployment's input.
    asked = prompts(deployed.http)
    assert len(asked) == 3, asked
    assert any("Step one about birds." in p for p in asked)
    # The run's record is in the project's state dir, where the worker ran it.
    summaries = list((deployed.project / ".codexflow" / "runs").glob("*/summary.json"))
    assert [json.loads(p.read_text())["status"] for p in summaries] == ["succeeded"]


def test_the_deployment_run_has_a_task_run_per_step_with_the_plans_edges(
    deployed: Deployment,
) -> None:
    server = deployed.server
    task_runs = server.task_runs(deployed.flow_run_id)
    names = {t["id"]: t["name"] for t in task_runs}
    assert sorted(names.values()) == ["writer: one", "writer: three", "writer: two"]
    edges = {
        (names[ref["id"]], t["name"])
        for t in task_runs
        for refs in t["task_inputs"].values()
        for ref in refs
        if ref.get("input_type") == "task_run"
    }
    assert edges == {("writer: one", "writer: two"), ("writer: one", "writer: three")}
    assert all(state_type(t) == "COMPLETED" for t in task_runs)


def test_the_deployment_run_has_the_report_artifact(deployed: Deployment) -> None:
    artifacts = deployed.server.artifacts(deployed.flow_run_id)
    reports = [a for a in artifacts if a["key"] == "codexflow-opsdeploy"]
    assert reports and reports[0]["type"] == "markdown"
    assert "| writer | succeeded |" in reports[0]["data"]


def test_the_deployment_run_emitted_codexflow_events(deployed: Deployment) -> None:
    """Prefect's own events for the run are in the feed (the event persister is on)."""
    server = deployed.server
    related = {"any_resource": {"id": [f"prefect.flow-run.{deployed.flow_run_id}"]}}

    def names() -> set[str] | None:
        found = {e["event"] for e in events(server, related)}
        return found if "prefect.flow-run.Completed" in found else None

    assert "prefect.flow-run.Running" in server.wait_for("the run's events", names)


def test_the_deployment_run_emitted_step_events(deployed: Deployment) -> None:
    related = {"related": {"id": [f"prefect.flow-run.{deployed.flow_run_id}"]},
               "event": {"prefix": ["codexflow."]}}  # fmt: skip
    finished = [
        e for e in events(deployed.server, related) if e["event"] == "codexflow.step.finished"
    ]
    assert len(finished) == 3
    assert all(e["payload"]["tokens"] > 0 for e in finished)


def test_deploy_without_a_server_says_how_to_start_one(tmp_path: Path) -> None:
    spec = openai_spec("noserver", "http://127.0.0.1:9/v1", TASKS)
    (tmp_path / "spec.yaml").write_text(spec.replace("tasks:", INPUTS + "tasks:"))
    env = {**outside_env(), **quiet_prefect_env(tmp_path / "home")}
    env.pop("PREFECT_API_URL", None)
    done = run_cli(["deploy", "spec.yaml"], env, tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no Prefect server configured" in done.stderr
    assert "codexflow server" in done.stderr


def test_deploy_rejects_a_bad_cron_and_an_unknown_input(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    spec = openai_spec("badcron", "http://127.0.0.1:9/v1", TASKS)
    (tmp_path / "spec.yaml").write_text(spec.replace("tasks:", INPUTS + "tasks:"))
    env = prefect_server.env(tmp_path / "home")
    bad = run_cli(["deploy", "spec.yaml", "--cron", "61 * * *"], env, tmp_path)
    assert bad.returncode == 2 and "--cron" in bad.stderr, bad.stderr
    unknown = run_cli(["deploy", "spec.yaml", "--set", "topc=x"], env, tmp_path)
    assert unknown.returncode == 2 and "unknown input `topc`" in unknown.stderr, unknown.stderr


def test_a_failed_deployment_run_retried_through_the_api_reruns_only_unfinished_steps(
    prefect_server: PrefectServer, worker: Path, tmp_path: Path
) -> None:
    failed_once = threading.Event()

    def reply(request: dict[str, Any]) -> Reply:
        if "Step two" in str(request["messages"][-1]["content"]) and not failed_once.is_set():
            failed_once.set()
            return Reply(status=400)  # fails at once, no retry: the run fails
        return Reply(content="fine")

    with running_openai_server() as http:
        http.default = reply
        (tmp_path / "spec.yaml").write_text(openai_spec("opsretry", http.url, TASKS).replace(
            "tasks:", INPUTS + "tasks:"))  # fmt: skip
        env = prefect_server.env(tmp_path / "home")
        done = run_cli(["deploy", "spec.yaml", "--pool", POOL, "--json"], env, tmp_path)
        assert done.returncode == 0, done.stderr
        deployment_id = json.loads(done.stdout)["deployment_id"]
        run = run_deployment(prefect_server, deployment_id, worker)
        assert state_type(run) == "FAILED", run["state"]
        before = len(http.chat_requests())
        assert before == 3  # one, two (refused), three
        # What the UI's Retry does: the flow run goes back to Scheduled (AwaitingRetry).
        prefect_server.post(
            f"/flow_runs/{run['id']}/set_state",
            {"state": {"type": "SCHEDULED", "name": "AwaitingRetry"}, "force": True},
        )
        again = wait_final(prefect_server, run["id"], worker)
        assert state_type(again) == "COMPLETED", again["state"]
        retried = prompts(http)[before:]
        assert len(retried) == 1 and "Step two" in retried[0], retried  # 0 for one and three
        assert again["run_count"] == 2


def test_a_second_deploy_without_a_schedule_removes_it(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    spec = openai_spec("opsunschedule", "http://127.0.0.1:9/v1", TASKS)
    (tmp_path / "spec.yaml").write_text(spec.replace("tasks:", INPUTS + SCHEDULE + "tasks:"))
    env = prefect_server.env(tmp_path / "home")
    assert run_cli(["deploy", "spec.yaml", "--pool", POOL], env, tmp_path).returncode == 0
    (tmp_path / "spec.yaml").write_text(spec.replace("tasks:", INPUTS + "tasks:"))
    later = run_cli(["deploy", "spec.yaml", "--pool", POOL, "--cron", "0 5 * * *"], env, tmp_path)
    assert later.returncode == 0, later.stderr
    deployment = prefect_server.get("/deployments/name/apply-spec/opsunschedule")
    assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["0 5 * * *"]
    assert run_cli(["deploy", "spec.yaml", "--pool", POOL], env, tmp_path).returncode == 0
    deployment = prefect_server.get("/deployments/name/apply-spec/opsunschedule")
    assert deployment["schedules"] == []
