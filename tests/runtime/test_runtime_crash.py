"""Crash safety: SIGKILL at several points, then re-runs: every unit ran exactly once in total,
and the outputs equal an uninterrupted run's. SIGTERM stops cleanly with a resumable state."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from runtime_support import FakeExecutor, six_step_plan

from codexflow.runtime import RunOptions, run_plan

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ALL_UNITS = {"plan", "work[0]", "work[1]", "work[2]", "a", "b", "join", "final"}
LATENCY = 0.3  # completions land at 0.3, 0.6 (4 units), 0.9, 1.2, 1.5 s


def start(state: Path, log: Path, out: Path, engine: str = "local") -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])}
    # Each Prefect-engine child starts its own embedded server on its own PREFECT_HOME.
    env["PREFECT_HOME"] = str(state / "prefect")
    with (log.parent / "stderr.txt").open("ab") as stderr:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, str(HERE / "runtime_crash_worker.py"), str(state), str(log), str(out), str(LATENCY), engine],
            env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip


def errors(log: Path) -> str:
    return (log.parent / "stderr.txt").read_text()


def lines(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def wait_for_lines(
    proc: subprocess.Popen[bytes], log: Path, count: int, timeout: float = 300.0
) -> list[str]:
    """Until `log` has `count` lines (bounded; generous for a loaded machine, not a bound on
    speed); returns them. The worker writes `<out>.stored` and `<out>.started` as the runtime
    reports units stored and started, so a test acts on what happened, never on a sleep."""
    deadline = time.monotonic() + timeout
    while len(lines(log)) < count:
        assert proc.poll() is None, errors(log)
        assert time.monotonic() < deadline, f"only {lines(log)} after {timeout} s"
        time.sleep(0.01)
    return lines(log)


def kill_with_children(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the run, then its children: Prefect's embedded API server is a child process
    that outlives a killed parent (its atexit clean-up never runs) and must not leak."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == proc.pid:
                children.append(int(entry.name))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def reference_outputs(tmp_path: Path) -> dict[str, object]:
    options = RunOptions(state_dir=tmp_path / "reference", engine="local")
    return run_plan(six_step_plan(), FakeExecutor(), options).outputs


@pytest.mark.slow
def test_sigkill_at_three_points_then_resume(tmp_path: Path) -> None:
    state, log, out = tmp_path / "state", tmp_path / "calls.log", tmp_path / "out.json"
    stored_file = out.with_suffix(".stored")
    kills: list[tuple[set[str], int]] = []  # (units reported stored, calls made) at each kill
    for units_stored in (1, 4, 6):  # during the fan-out, during `a`/`b`, during `join`
        proc = start(state, log, out)
        # Each run reports the cached units again: count distinct units, over all runs.
        for _ in range(30000):  # bounded: ~5 minutes of 0.01 s checks on a loaded machine
            if len(set(lines(stored_file))) >= units_stored:
                break
            assert proc.poll() is None, errors(log)
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        assert not out.exists()
        kills.append((set(lines(stored_file)), len(lines(log))))
    assert len(kills[-1][0]) >= 6, kills
    proc = start(state, log, out)
    assert proc.wait(timeout=300) == 0, errors(log)
    calls = lines(log)
    counts = Counter(calls)
    assert set(counts) == ALL_UNITS, counts
    for stored, made in kills:  # once reported stored, a unit is never paid for again
        assert not stored & set(calls[made:]), (stored, calls[made:])
    # A unit whose answer came back but was not yet stored may run once more per kill.
    assert max(counts.values()) <= 1 + len(kills), counts
    final = json.loads(out.read_text())
    assert final["status"] == "succeeded"
    assert final["outputs"] == reference_outputs(tmp_path)
    # Nothing a killed run left behind (no lock, no temp file) got in the way.
    assert not list(state.rglob("*.tmp"))


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_keeps_arriving_results(tmp_path: Path) -> None:
    state, log, out = tmp_path / "state", tmp_path / "calls.log", tmp_path / "out.json"
    proc = start(state, log, out)
    wait_for_lines(proc, out.with_suffix(".started"), 5)  # plan done; the 3 items and b run
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 1
    stopped = json.loads(out.read_text())
    assert stopped["status"] == "interrupted"
    assert len(lines(log)) == 5  # the running units finished and were kept; nothing new started
    summary = json.loads(next(state.glob("runs/*/summary.json")).read_text())
    statuses = {row["id"]: row["status"] for row in summary["steps"]}
    assert statuses["b"] == "succeeded" and statuses["a"] == "not_run"
    assert "SIGTERM" in summary["reason"]
    proc = start(state, log, out)
    assert proc.wait(timeout=300) == 0
    assert Counter(lines(log)) == Counter(ALL_UNITS)
    assert json.loads(out.read_text())["outputs"] == reference_outputs(tmp_path)


@pytest.mark.slow
def test_prefect_engine_stopped_then_killed_then_resumed(tmp_path: Path) -> None:
    """With Prefect recording: SIGTERM ends the flow run cleanly; a SIGKILL while Prefect is
    active leaves no lock that delays the next run (Prefect's own result locks once blocked
    re-runs for 35 s+); the last run pays only for what never finished."""
    state, log, out = tmp_path / "state", tmp_path / "calls.log", tmp_path / "out.json"
    flow_file = out.with_suffix(".flow")
    proc = start(state, log, out, engine="prefect")
    # Units are Prefect task runs: the first one ends once the embedded server is up (a fresh
    # PREFECT_HOME runs its migrations first; generous for a loaded machine, it is not a bound).
    wait_for_lines(proc, log, 1, timeout=300)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 1, errors(log)
    stopped = json.loads(out.read_text())
    assert stopped["status"] == "interrupted" and stopped["flow_run"]

    flow_file.unlink()
    proc = start(state, log, out, engine="prefect")
    deadline = time.monotonic() + 300
    while not flow_file.exists():  # Prefect has a flow run: now kill it mid-recording
        assert proc.poll() is None and time.monotonic() < deadline, errors(log)
        time.sleep(0.02)
    kill_with_children(proc)
    stored, made = set(lines(out.with_suffix(".stored"))), len(lines(log))  # at the kill

    proc = start(state, log, out, engine="prefect")
    assert proc.wait(timeout=300) == 0, errors(log)  # no lock left by the killed run
    counts = Counter(lines(log))
    assert set(counts) == ALL_UNITS and not stored & set(lines(log)[made:]), (stored, counts)
    # The kill lands as the flow run starts: a unit answered but not yet stored then (only on
    # a very loaded machine) may run once more, never a stored one.
    assert max(counts.values()) <= 2, counts
    assert json.loads(out.read_text())["outputs"] == reference_outputs(tmp_path)
