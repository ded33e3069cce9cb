"""Limits across processes: two runs sharing one real Prefect server never exceed the spec's
provider limit together; `codexflow apply` links its flow run; a killed run's slot comes back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.prefect_server import api, running_prefect_server

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORKER = HERE / "global_limits_worker.py"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prefect server of this module's own (its limits and leases are what is tested)."""
    with running_prefect_server(tmp_path_factory.mktemp("prefect-server")) as url:
        yield url


def client_env(url: str, home: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])}
    env.update(PREFECT_API_URL=url, PREFECT_HOME=str(home), PREFECT_LOGGING_LEVEL="WARNING")
    return env


def start_worker(
    url: str,
    tmp: Path,
    state: str,
    calls: Path,
    steps: int,
    latency: float,
    limit: int,
    name: str,
    together: int = 0,
) -> subprocess.Popen[bytes]:
    out = tmp / f"{name}.json"
    env = client_env(url, tmp / "client-home")
    if together:
        env.update(BARRIER_DIR=str(tmp), BARRIER_COUNT=str(together))
    with (tmp / f"{name}.stderr").open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, str(WORKER), str(tmp / state), str(calls), str(out), str(steps),
             str(latency), str(limit), name],
            env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip


def finish(proc: subprocess.Popen[bytes], tmp: Path, name: str, timeout: float = 60) -> Any:
    try:
        code = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    errors = (tmp / f"{name}.stderr").read_text()
    assert code == 0, errors
    return json.loads((tmp / f"{name}.json").read_text())


def in_flight(calls: Path) -> tuple[int, set[str]]:
    """The most executor calls in flight at once, over every process, and those processes."""
    events = []
    for line in calls.read_text().splitlines():
        what, _unit, pid, at = line.split()
        events.append((float(at), 0 if what == "end" else 1, pid))
    peak = running = 0
    for _at, starts, _pid in sorted(events):  # an end at the same instant counts first
        running += 1 if starts else -1
        peak = max(peak, running)
    return peak, {pid for _, _, pid in events}


def slots(url: str, name: str) -> int:
    return int(api(url, f"/v2/concurrency_limits/{name}")["active_slots"])


def test_two_processes_share_the_provider_limit(server: str, tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    first = start_worker(server, tmp_path, "state-a", calls, 6, 0.4, 2, "first", together=2)
    second = start_worker(server, tmp_path, "state-b", calls, 6, 0.4, 2, "second", together=2)
    reports = [finish(first, tmp_path, "first"), finish(second, tmp_path, "second")]
    assert [r["status"] for r in reports] == ["succeeded", "succeeded"], reports
    peak, pids = in_flight(calls)
    assert len(pids) == 2 and len(calls.read_text().splitlines()) == 24
    # Both runs started together (a barrier), each free to run 2 calls at once in-process:
    # 4 at once and ~1.2 s in all without the server's limit; 2 at once and >= 2.4 s with it.
    assert peak == 2, calls.read_text()
    times = [float(line.split()[3]) for line in calls.read_text().splitlines()]
    assert max(times) - min(times) >= 2.3, calls.read_text()
    limit = api(server, "/v2/concurrency_limits/codexflow-provider-fake")
    assert limit["limit"] == 2 and limit["active_slots"] == 0


SPEC = """\
apiVersion: codexflow/v1
name: limits
workspace: .
providers:
  scripted:
    max_concurrency: 1
agents:
  writer:
    model: scripted/demo
    role: writer
    goal: Write.
    replicas: 2
tasks:
  one: {agent: writer, prompt: Say one.}
  two: {agent: writer, prompt: Say two.}
  three: {agent: writer, prompt: Say three., depends_on: [one, two]}
"""
SCRIPT = """\
replies:
  - content: done
    delay: 0.1
    usage: {prompt_tokens: 10, completion_tokens: 2}
    repeat: true
"""


def test_apply_prints_the_flow_run_link_and_records_it(server: str, tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(SPEC)
    (tmp_path / "script.yaml").write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, "-m", "codexflow", "apply", "spec.yaml", "--script", "script.yaml",
         "--state-dir", "state"],
        cwd=tmp_path, env=client_env(server, tmp_path / "client-home"), capture_output=True,
        text=True, timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    printed = done.stdout + done.stderr
    base = server.removesuffix("/api")
    line = next(x for x in printed.splitlines() if x.startswith("Prefect flow run: "))
    flow_run_id = line.split()[3]
    assert line.endswith(f"{base}/runs/flow-run/{flow_run_id}"), line
    assert api(server, f"/flow_runs/{flow_run_id}")["name"].startswith("20")
    names: list[str] = []
    deadline = time.monotonic() + 20  # the server records task runs from events, soon after
    while len(names) < 3 and time.monotonic() < deadline:
        runs = api(server, "/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})
        names = sorted(r["name"] for r in runs)
        time.sleep(0.2)
    assert names == ["writer: one", "writer: three", "writer: two"]
    assert api(server, "/v2/concurrency_limits/codexflow-provider-scripted")["limit"] == 1
    assert api(server, "/v2/concurrency_limits/codexflow-agent-limits-writer")["limit"] == 2
    assert slots(server, "codexflow-provider-scripted") == 0


def test_a_killed_run_does_not_keep_its_slot(server: str, tmp_path: Path) -> None:
    """SIGKILL while a call holds the only slot: the server keeps counting it (its lease would
    expire in 60-75 s); the next run on the same state dir releases it at once."""
    calls = tmp_path / "calls.txt"
    victim = start_worker(server, tmp_path, "state", calls, 1, 60, 1, "victim")
    try:
        deadline = time.monotonic() + 30
        while not (calls.exists() and calls.read_text().startswith("start")):
            assert victim.poll() is None, (tmp_path / "victim.stderr").read_text()
            assert time.monotonic() < deadline, "the victim never started its call"
            time.sleep(0.05)
        assert slots(server, "codexflow-provider-fake") == 1
    finally:
        victim.kill()
        victim.wait(timeout=10)
    assert slots(server, "codexflow-provider-fake") == 1  # leaked on the server, for now
    started = time.monotonic()
    after = start_worker(server, tmp_path, "state", calls, 2, 0.1, 1, "after")
    report = finish(after, tmp_path, "after", timeout=40)
    assert report["status"] == "succeeded", report
    assert time.monotonic() - started < 30  # not the 60 s of an expiring lease
    assert slots(server, "codexflow-provider-fake") == 0
    # The victim's lease file was reclaimed; the one left is the second run's own.
    assert len(list((tmp_path / "state" / "leases").glob("*.leases"))) == 1


HOLD_SCRIPT = """
import sys, threading
from pathlib import Path
from runtime_support import S, make_plan
from codexflow.runtime import RunOptions
from codexflow.runtime.global_limits import GlobalLimits, GlobalLimitTimeout

plan = make_plan("hold", [S("slow", timeout=1.0, model="held/m"), S("other", model="held/m")])
limits = GlobalLimits(plan, RunOptions(state_dir=Path(sys.argv[1]), provider_limits={"held": 1}), "url")
limits.setup()
step = {s.id: s for s in plan.steps}
try:  # a failing call releases its slot
    with limits.hold(step["other"]):
        raise ValueError("boom")
except ValueError:
    pass
with limits.hold(step["other"]):  # the only slot: the step with a 1 s timeout gives up
    try:
        with limits.hold(step["slow"]):
            raise SystemExit("acquired a slot that was taken")
    except GlobalLimitTimeout as exc:
        print(exc)
"""


def test_waiting_for_a_slot_times_out_and_failures_release(server: str, tmp_path: Path) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", HOLD_SCRIPT, str(tmp_path / "state")],
        env=client_env(server, tmp_path / "client-home"), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "step slow waited 1 s for a slot of the Prefect global concurrency limit(s) "
        "codexflow-provider-held" in done.stdout
    ), done.stdout
    assert time.monotonic() - started < 30
    assert slots(server, "codexflow-provider-held") == 0
