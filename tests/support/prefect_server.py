"""One real Prefect server on 127.0.0.1 per test session (its start costs ~10 s), for the tests
that read Prefect's API after real applies or drive a run from it (cancel, approve)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.processes import free_port, stop_group


def api(url: str, path: str, body: Any = None, method: str | None = None) -> Any:
    """A call to the Prefect REST API (no Prefect client: no settings of this process)."""
    request = urllib.request.Request(
        url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method=method or ("GET" if body is None else "POST"),
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


@contextlib.contextmanager
def running_prefect_server(home: Path) -> Iterator[str]:
    """`prefect server start` on a free port of 127.0.0.1 with its own PREFECT_HOME."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
    }
    with (home / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
             "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api"
    try:
        for _ in range(1200):  # bounded: a few minutes on a loaded machine at the very most
            assert proc.poll() is None, (home / "server.log").read_text()
            with contextlib.suppress(OSError, ValueError):
                if api(url, "/health") is True:
                    break
            time.sleep(0.2)
        else:
            raise AssertionError("the Prefect server did not start")
        yield url
    finally:
        stop_group(proc)


def flow_runs(url: str, tag: str) -> list[dict[str, Any]]:
    body = {"flow_runs": {"tags": {"all_": [tag]}}, "sort": "START_TIME_DESC", "limit": 20}
    runs: list[dict[str, Any]] = api(url, "/flow_runs/filter", body)
    return runs


def task_runs(url: str, flow_run_id: str) -> list[dict[str, Any]]:
    body = {"flow_runs": {"id": {"any_": [flow_run_id]}}, "limit": 200}
    runs: list[dict[str, Any]] = api(url, "/task_runs/filter", body)
    return runs
