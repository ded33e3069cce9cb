"""Control from Prefect: `codexflow apply` runs against a real Prefect server on 127.0.0.1,
and a test acting as the UI cancels the flow run or answers a gate's form through the API.
Every model call is counted at a real OpenAI-protocol server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.openai_server import OpenAIServer, Reply, running_openai_server
from tests.support.prefect_server import api, flow_runs, task_runs

ROOT = Path(__file__).resolve().parents[1]


def write_spec(path: Path, name: str, api_base: str, gate: bool = False) -> Path:
    tasks: dict[str, Any] = {
        "a": {"agent": "w", "prompt": "STEP-a"},
        "b": {"agent": "w", "depends_on": ["a"], "prompt": "STEP-b"},
        "c": {"agent": "w", "depends_on": ["b"], "prompt": "STEP-c"},
    }
    if gate:
        tasks["b"]["approval"] = True
    spec = {
        "apiVersion": "codexflow/v1",
        "name": name,
        "defaults": {"model": "openai/test-model", "retries": 0, "retry_delay": 0},
        "providers": {"openai": {"api_base": api_base, "api_key_env": "CODEXFLOW_TEST_KEY"}},
        "agents": {"w": {"role": "writer", "goal": "Answer in one line."}},
        "tasks": tasks,
    }
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


def apply(spec: Path, state: Path, url: str, out: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_API_URL": url, "CODEXFLOW_TEST_KEY": "sk-test", "NO_COLOR": "1"}
    env["PREFECT_HOME"] = str(state.parent / "prefect-home")
    (state.parent / "ws").mkdir(exist_ok=True)
    command = [sys.executable, "-m", "codexflow", "apply", str(spec), "--state-dir", str(state),
               "--workspace", str(state.parent / "ws")]  # fmt: skip
    with out.open("ab") as handle:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=handle,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def steps(server: OpenAIServer) -> list[str]:
    found = []
    for request in server.chat_requests():
        text = json.dumps((request.json or {}).get("messages", []))
        found += [s for s in "abc" if f"STEP-{s}" in text and s not in found][:1]
    return found


def wait_until(condition: Any, proc: subprocess.Popen[bytes], out: Path) -> Any:
    for _ in range(3000):  # bounded: 0.1 s checks, a few minutes at the very most
        value = condition()
        if value:
            return value
        assert proc.poll() is None, out.read_text(errors="replace")
        time.sleep(0.1)
    raise AssertionError(out.read_text(errors="replace"))


@pytest.mark.slow
def test_cancel_from_prefect_stops_the_run_and_a_reapply_resumes(
    tmp_path: Path, prefect_api: str
) -> None:
    with running_openai_server() as server:
        server.enqueue(Reply(content="out-a", delay=2.0), Reply(content="out-b"))
        server.enqueue(Reply(content="out-c"))
        spec = write_spec(tmp_path / "spec.json", "cancel-me", f"{server.url}/v1")
        out, state = tmp_path / "apply.out", tmp_path / "state"
        proc = apply(spec, state, prefect_api, out)
        wait_until(lambda: server.chat_requests(), proc, out)  # `a` is in flight
        run = wait_until(lambda: flow_runs(prefect_api, "spec:cancel-me"), proc, out)[0]
        api(prefect_api, f"/flow_runs/{run['id']}/set_state",
            {"state": {"type": "CANCELLING", "message": "cancelled by the test"}, "force": True})  # fmt: skip
        assert proc.wait(timeout=120) == 1, out.read_text(errors="replace")
        assert len(server.chat_requests()) == 1  # `a` landed within the grace; nothing new began
        final = api(prefect_api, f"/flow_runs/{run['id']}")
        assert final["state"]["type"] == "CANCELLED"
        summary = json.loads(next(state.glob("runs/*/summary.json")).read_text())
        assert {s["id"]: s["status"] for s in summary["steps"]}["a"] == "succeeded"

        proc = apply(spec, state, prefect_api, out)
        assert proc.wait(timeout=120) == 0, out.read_text(errors="replace")
        assert len(server.chat_requests()) == 3  # b and c only: a came from the cache


@pytest.mark.slow
@pytest.mark.parametrize("approve", [True, False])
def test_a_gate_is_answered_in_prefect(tmp_path: Path, prefect_api: str, approve: bool) -> None:
    name = f"gate-{'yes' if approve else 'no'}"
    with running_openai_server() as server:
        server.enqueue(Reply(content="out-a"), Reply(content="out-b"), Reply(content="out-c"))
        spec = write_spec(tmp_path / "spec.json", name, f"{server.url}/v1", gate=True)
        out, state = tmp_path / "apply.out", tmp_path / "state"
        proc = apply(spec, state, prefect_api, out)

        def paused() -> dict[str, Any] | None:
            runs = flow_runs(prefect_api, f"spec:{name}")
            return runs[0] if runs and runs[0]["state"]["type"] == "PAUSED" else None

        run = wait_until(paused, proc, out)
        # The form's schema is saved just after the state turns Paused: answer until accepted.
        answer = {"run_input": {"approve": approve, "note": "from the test"}}
        wait_until(
            lambda: (
                api(prefect_api, f"/flow_runs/{run['id']}/resume", answer).get("status") == "ACCEPT"
            ),
            proc,
            out,
        )
        code = proc.wait(timeout=120)
        requested = len(server.chat_requests())
        names = {t["name"]: t["state"]["name"] for t in task_runs(prefect_api, run["id"])}
        if approve:
            assert code == 0, out.read_text(errors="replace")
            assert requested == 3
            assert names["approval: b.approval"] == "Completed"
        else:
            assert code == 1, out.read_text(errors="replace")
            assert requested == 1  # only `a`: b was denied, c below it skipped
            assert names["approval: b.approval"] == "Denied"
            assert names["w: c"] == "Skipped"
