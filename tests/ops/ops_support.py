"""Helpers of the operations tests: a Prefect server and its REST API, workers, CLI runs, specs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

KEY_ENV = "CODEXFLOW_OPS_TEST_KEY"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def quiet_prefect_env(home: Path) -> dict[str, str]:
    """Prefect settings every process of these tests gets: private home, no analytics."""
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }


@dataclass
class PrefectServer:
    """A running `prefect server start` and a tiny JSON client of its REST API."""

    url: str  # http://127.0.0.1:PORT/api
    home: Path
    log: Path

    @property
    def ui(self) -> str:
        return self.url.removesuffix("/api")

    def call(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method=method,
        )
        for attempt in range(20):  # bounded: ~10 s of 503s from an overloaded server
            try:
                with urllib.request.urlopen(request, timeout=90) as response:
                    raw = response.read()
                return json.loads(raw) if raw else None
            except urllib.error.HTTPError as exc:
                # Prefect's request limit answers 503 before it handles a request: safe to retry.
                if exc.code != 503 or attempt == 19:
                    raise
                time.sleep(0.5)
        raise AssertionError("unreachable")

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def post(self, path: str, body: Any = None) -> Any:
        return self.call("POST", path, {} if body is None else body)

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        """The environment of a client process (codexflow, a worker) of this server."""
        env = {**outside_env(), **quiet_prefect_env(home), "PREFECT_API_URL": self.url}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
        env.update(extra)
        return env

    def wait_for(
        self, what: str, check: Callable[[], Any], timeout: float = 90.0, every: float = 0.25
    ) -> Any:
        """Poll the API until `check()` is truthy (bounded); returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(every)

    def flow_run(self, flow_run_id: str) -> dict[str, Any]:
        return dict(self.get(f"/flow_runs/{flow_run_id}"))

    def task_runs(self, flow_run_id: str) -> list[dict[str, Any]]:
        body = {"flow_runs": {"id": {"any_": [flow_run_id]}}, "limit": 200}
        return list(self.post("/task_runs/filter", body))

    def artifacts(self, flow_run_id: str) -> list[dict[str, Any]]:
        return list(
            self.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}})
        )


def events(server: PrefectServer, filter: dict[str, Any], pages: int = 20) -> list[dict[str, Any]]:
    """Events matching `filter` (Prefect's EventFilter), oldest first, at most `pages` pages."""
    page = server.post("/events/filter", {"filter": filter, "limit": 50})
    found = list(page["events"])
    for _ in range(pages):
        if not page.get("next_page"):
            break
        with urllib.request.urlopen(page["next_page"], timeout=30) as response:
            page = json.loads(response.read())
        found.extend(page["events"])
    return sorted(found, key=lambda e: str(e["occurred"]))


def start_prefect_server(home: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**outside_env(), **quiet_prefect_env(home)}
    env["PREFECT_UI_API_URL"] = f"http://127.0.0.1:{port}/api"
    # SQLite under several workers and runs on 2 loaded cores locks up ("database is locked",
    # calls of 30 s+): keep the server to what the tests read. No scheduler (the tests read a
    # deployment's schedule, not the runs it would create), no late-run or foreman loops.
    env["PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED"] = "false"
    env["PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED"] = "false"
    env["PREFECT_SERVER_SERVICES_FOREMAN_ENABLED"] = "false"
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
             "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, log.read_text(errors="replace")
        with (
            contextlib.suppress(OSError, ValueError),
            urllib.request.urlopen(url + "/health", timeout=5) as response,
        ):
            if json.loads(response.read()) is True:
                return
        assert time.monotonic() < deadline, f"the Prefect server did not start in {timeout} s"
        time.sleep(0.25)


def stop_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """`python -m codexflow ARGS` in its own process (Prefect settings are per process)."""
    return subprocess.run(
        [sys.executable, "-m", "codexflow", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def openai_spec(
    name: str,
    api_base: str,
    tasks: str,
    *,
    max_concurrency: int | None = None,
    extra: str = "",
) -> str:
    """A spec whose agents talk to the fake OpenAI server at `api_base` (a real HTTP path)."""
    limit = f", max_concurrency: {max_concurrency}" if max_concurrency else ""
    return (
        f"apiVersion: codexflow/v1\nname: {name}\nworkspace: .\n"
        f"providers:\n  openai: {{api_base: '{api_base}', api_key_env: {KEY_ENV}{limit}}}\n"
        "defaults: {model: openai/gpt-4o-mini, retries: 0}\n"
        "agents:\n  writer: {role: writer, goal: Write short answers., replicas: 4}\n"
        f"tasks:\n{tasks}{extra}"
    )


def start_worker(
    server: PrefectServer, pool: str, home: Path, log: Path, *args: str
) -> subprocess.Popen[bytes]:
    """`prefect worker start --pool POOL` with this worktree's code, logging to `log`."""
    env = server.env(home, **{KEY_ENV: "sk-ops-test"}, PREFECT_WORKER_QUERY_SECONDS="1")
    env["PREFECT_LOGGING_LEVEL"] = "INFO"  # the worker says which runs it took
    env["PREFECT_LOGGING_TO_API_ENABLED"] = "false"  # ... to its log file, not to the server
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type",
             "process", *args],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    stop_group(proc, signal.SIGINT)


def state_type(run: dict[str, Any]) -> str:
    return str((run.get("state") or {}).get("type", ""))


def http_error_body(exc: urllib.error.HTTPError) -> str:
    return exc.read().decode(errors="replace")


def outside_env() -> dict[str, str]:
    """This process's environment without Prefect's settings: in-process runs of other tests
    set some (codexflow pins Prefect's settings when it runs), and a server or worker started
    here must get only its own."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
