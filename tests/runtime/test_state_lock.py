"""One apply per state dir: two real `codexflow apply` processes against a real HTTP server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.openai_server import OpenAIServer, Reply, running_openai_server

ROOT = Path(__file__).resolve().parents[2]
KEY_ENV = "CODEXFLOW_TEST_KEY"


def write_spec(path: Path, api_base: str) -> Path:
    spec = {
        "apiVersion": "codexflow/v1",
        "name": "state-lock",
        "defaults": {"model": "openai/test-model", "retries": 0, "retry_delay": 0},
        "providers": {"openai": {"api_base": api_base, "api_key_env": KEY_ENV}},
        "agents": {"writer": {"role": "writer", "goal": "Answer in one line."}},
        "tasks": {
            "a": {"agent": "writer", "prompt": "STEP-a"},
            "b": {"agent": "writer", "depends_on": ["a"], "prompt": "STEP-b {{ tasks.a.output }}"},
        },
    }
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


def start(spec: Path, state: Path, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {KEY_ENV: "sk-test", "COLUMNS": "200", "NO_COLOR": "1"}
    workspace = state.parent / "workspace"
    workspace.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "codexflow", "apply", str(spec), "--no-prefect"]
    command += ["--state-dir", str(state), "--workspace", str(workspace), *extra]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


@contextlib.contextmanager
def gated_server() -> Iterator[tuple[OpenAIServer, threading.Event, threading.Event]]:
    """A server whose answers wait for `release`; `arrived` is set by the first request."""
    arrived, release = threading.Event(), threading.Event()

    def reply(body: dict[str, Any]) -> Reply:
        arrived.set()
        release.wait(60)
        return Reply(content="done")

    with running_openai_server() as server:
        server.default = reply
        try:
            yield server, arrived, release
        finally:
            release.set()


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"apply did not finish:\n{out}")
    return proc.returncode, out


@pytest.mark.slow
def test_a_second_apply_waits_and_then_pays_for_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with gated_server() as (server, arrived, release):
        spec = write_spec(tmp_path / "swarm.yaml", server.url)
        first = start(spec, state)
        assert arrived.wait(60), "the first apply never called the model"

        refused = start(spec, state, "--no-wait")
        code, out = finish(refused)
        assert code == 1, out
        assert "another codexflow apply is using" in out and "--no-wait" in out

        second = start(spec, state)
        assert second.stdout is not None
        lines = []
        for line in second.stdout:  # ends at the latest when the first apply ends
            lines.append(line)
            if "waiting for it to finish" in line:
                break
        assert any("waiting for it to finish" in line for line in lines), lines
        assert len(server.chat_requests()) == 1  # only the first apply's call so far
        release.set()

        first_code, first_out = finish(first)
        second_code, second_out = finish(second)
        assert first_code == 0, first_out
        assert second_code == 0, second_out
        # Each step was paid for once: the second apply found every result in the cache.
        assert len(server.chat_requests()) == 2


@pytest.mark.slow
def test_a_killed_apply_leaves_no_lock_behind(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with gated_server() as (server, arrived, release):
        spec = write_spec(tmp_path / "swarm.yaml", server.url)
        first = start(spec, state)
        assert arrived.wait(60)
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate(timeout=30)
        release.set()
        code, out = finish(start(spec, state, "--no-wait"))
        assert code == 0, out
