"""Durable steps: an agent step killed in the middle of its tool-calling loop resumes without
paying again for the model requests it completed, and without running its tool calls again.

Counted at a real OpenAI-protocol server on 127.0.0.1 and by the tool's own side effect (each
execution appends a line to a file in the workspace). The kill is placed by the server's
request log (the 5th request has arrived and is held), not by a sleep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.support.openai_server import Reply, running_openai_server

ROOT = Path(__file__).resolve().parents[1]
TURNS = 8  # 7 tool calls, then the final answer
KILL_AT = 5  # the request in flight when the run is killed


def write_spec(path: Path, api_base: str) -> Path:
    spec: dict[str, Any] = {
        "apiVersion": "codexflow/v1",
        "name": "durable-step",
        "defaults": {"model": "openai/test-model", "retries": 0, "retry_delay": 0},
        "providers": {"openai": {"api_base": api_base, "api_key_env": "CODEXFLOW_TEST_KEY"}},
        "tools": {
            "note": {
                "kind": "shell",
                "command": [
                    "python3",
                    "-c",
                    "import sys; open('notes.txt', 'a').write(sys.argv[1] + '\\n')",
                    "{{ n }}",
                ],
                "description": "Append a note.",
                "args": {"n": {"type": "string", "description": "the note"}},
            }
        },
        "agents": {
            "coder": {"role": "coder", "goal": "Take notes.", "tools": ["note"], "max_turns": 20}
        },
        "tasks": {"work": {"agent": "coder", "prompt": "Take seven notes, then say done."}},
    }
    path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    return path


def note_call(n: int) -> Reply:
    return Reply(
        content=None,
        tool_calls=[{"name": "note", "arguments": json.dumps({"n": f"note-{n}"})}],
    )


def left_running(group: int) -> list[str]:
    """The command lines of live (not zombie) processes still in the process group."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, _ppid, pgrp = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(pgrp) == group and state != "Z":
            found.append(cmdline)
    return found


def apply(spec: Path, root: Path, engine: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"CODEXFLOW_TEST_KEY": "sk-test-durable", "NO_COLOR": "1"}
    env["PREFECT_HOME"] = str(root / "prefect-home")
    command = [sys.executable, "-m", "codexflow", "apply", str(spec), "--state-dir",
               str(root / "state"), "--workspace", str(root / "ws")]  # fmt: skip
    if engine == "local":
        command.append("--no-prefect")
    with (root / "apply.out").open("ab") as out:  # the child keeps its own copy
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True,
        )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["local", "prefect"])
def test_a_step_killed_at_its_fifth_request_resumes_without_paying_again(
    tmp_path: Path, engine: str
) -> None:
    (tmp_path / "ws").mkdir()
    arrived = threading.Event()
    with running_openai_server() as server:
        spec = write_spec(tmp_path / "spec.json", f"{server.url}/v1")
        replies: list[Any] = [note_call(n) for n in range(1, KILL_AT)]
        # The 5th request is held (never answered in time): the run is killed while it waits.
        replies.append(Reply(content="never seen", delay=60))
        replies += [note_call(n) for n in range(KILL_AT, TURNS)]
        replies.append(Reply(content="done"))
        server.enqueue(*replies)

        proc = apply(spec, tmp_path, engine)
        for _ in range(6000):  # bounded: ~10 minutes of 0.1 s checks at the very most
            if len(server.chat_requests()) >= KILL_AT:
                arrived.set()
                break
            if proc.poll() is not None:
                break
            threading.Event().wait(0.1)
        assert arrived.is_set(), (tmp_path / "apply.out").read_text(errors="replace")
        # Only the apply is killed: what it started (the embedded Prefect server) must end too.
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        for _ in range(600):  # bounded: the server gives itself 5 s to stop, then exits
            if not left_running(proc.pid):
                break
            threading.Event().wait(0.1)
        assert not left_running(proc.pid), left_running(proc.pid)
        notes = (tmp_path / "ws" / "notes.txt").read_text().split()
        assert notes == [f"note-{n}" for n in range(1, KILL_AT)]

        before = len(server.chat_requests())
        proc = apply(spec, tmp_path, engine)
        assert proc.wait(timeout=300) == 0, (tmp_path / "apply.out").read_text(errors="replace")
        if engine == "prefect":  # embedded: the run says how to start in a second next time
            assert "export PREFECT_API_URL=" in (tmp_path / "apply.out").read_text()
        again = server.chat_requests()[before:]
        # Only the request that was in flight is sent again, then the turns after it.
        assert len(again) == TURNS - KILL_AT + 1
        first = again[0].json or {}
        tool_results = [m for m in first.get("messages", []) if m.get("role") == "tool"]
        assert len(tool_results) == KILL_AT - 1  # the resumed conversation, not a new one
        # Every tool call ran exactly once, across both runs.
        notes = (tmp_path / "ws" / "notes.txt").read_text().split()
        assert notes == [f"note-{n}" for n in range(1, TURNS)]
