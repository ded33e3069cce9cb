"""Scale-out on one machine: two workers on one pool run four deployment runs of two specs at once,
and `providers.openai.max_concurrency: 2` holds across all of them at a real HTTP server."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from ops_support import PrefectServer, openai_spec, run_cli, start_worker, state_type, stop_worker

from tests.support.openai_server import OpenAIServer, Reply

pytestmark = pytest.mark.slow

POOL = "ops-scale"
TASKS = """\
  left: {agent: writer, prompt: "Left side of {{ inputs.n }}."}
  right: {agent: writer, prompt: "Right side of {{ inputs.n }}."}
"""
INPUTS = "inputs:\n  n: {type: integer, default: 0}\n"
LATENCY = 0.3  # seconds each model request takes once the runs are all under way


class Gate:
    """Counts the requests in flight at the model server; holds the first ones until Prefect
    shows all four flow runs Running at once (bounded), so the overlap is certain, not timed."""

    def __init__(self, server: PrefectServer, flow_run_ids: list[str]) -> None:
        self.server, self.ids = server, flow_run_ids
        self.lock = threading.Lock()
        self.in_flight = self.peak = self.total = 0
        self.released = threading.Event()
        self.all_running = False
        self.watcher = threading.Thread(target=self.watch, daemon=True)

    def watch(self) -> None:
        deadline = time.monotonic() + 180
        body = {"flow_runs": {"id": {"any_": self.ids}, "state": {"type": {"any_": ["RUNNING"]}}}}
        while time.monotonic() < deadline:
            if len(self.server.post("/flow_runs/filter", body)) == len(self.ids):
                self.all_running = True
                break
            time.sleep(1.0)
        self.released.set()

    def __call__(self, request: dict[str, Any]) -> Reply:
        with self.lock:
            self.in_flight += 1
            self.total += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            self.released.wait(200)
            time.sleep(LATENCY)
        finally:
            with self.lock:
                self.in_flight -= 1
        return Reply(content="done")


def test_two_workers_run_four_deployment_runs_within_the_provider_limit(
    prefect_server: PrefectServer, openai_server: OpenAIServer, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    env = prefect_server.env(tmp_path / "home")
    deployments = []
    for name in ("scale-a", "scale-b"):
        spec = openai_spec(name, openai_server.url, TASKS, max_concurrency=2)
        (project / f"{name}.yaml").write_text(spec.replace("tasks:", INPUTS + "tasks:"))
        done = run_cli(["deploy", f"{name}.yaml", "--pool", POOL, "--json"], env, project)
        assert done.returncode == 0, done.stdout + done.stderr
        deployments.append(json.loads(done.stdout)["deployment_id"])
    # Four runs, each with its own input so that no run can reuse another's cached answers.
    runs = [
        prefect_server.post(
            f"/deployments/{deployments[i % 2]}/create_flow_run",
            {"parameters": {"inputs": {"n": i}}},
        )["id"]
        for i in range(4)
    ]
    gate = Gate(prefect_server, runs)
    openai_server.default = gate
    gate.watcher.start()
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    workers = [start_worker(prefect_server, POOL, tmp_path / f"w{i}", log, "--limit", "2")
               for i, log in enumerate(logs)]  # fmt: skip
    try:

        def finished() -> bool:
            return all(
                state_type(prefect_server.flow_run(r)) in ("COMPLETED", "FAILED", "CRASHED")
                for r in runs
            )

        try:
            prefect_server.wait_for("the four runs to end", finished, timeout=300, every=1.0)
        except AssertionError:
            raise AssertionError("\n".join(log.read_text()[-3000:] for log in logs)) from None
    finally:
        for worker in workers:
            stop_worker(worker)
    states = [state_type(prefect_server.flow_run(r)) for r in runs]
    assert states == ["COMPLETED"] * 4, states
    assert gate.all_running, "the four runs were never running at the same time"
    assert gate.total == 8  # two steps per run, none cached
    assert gate.peak == 2, gate.peak  # the limit, reached and never passed, across processes
    # Both workers took runs (each may run at most two at once).
    texts = [log.read_text() for log in logs]
    assert all(any(r in text for r in runs) for text in texts), texts
    limit = prefect_server.get("/v2/concurrency_limits/codexflow-provider-openai")
    assert (limit["limit"], limit["active_slots"]) == (2, 0)
