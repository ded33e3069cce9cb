"""`codexflow server` on any port: the UI calls its own API; SIGINT to codexflow alone stops it all."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from ops_support import free_port, outside_env, quiet_prefect_env, wait_healthy

pytestmark = pytest.mark.slow


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc (children of children too)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_server_on_another_port_serves_a_ui_that_calls_its_own_api(tmp_path: Path) -> None:
    port = free_port()
    env = {**outside_env(), **quiet_prefect_env(tmp_path / "unused-home")}
    for key in ("PREFECT_HOME", "PREFECT_API_URL", "PREFECT_UI_API_URL"):
        env.pop(key, None)  # codexflow chooses them
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "codexflow", "server", "--port", str(port), "--state-dir",
             str(tmp_path / "state")],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url + "/api", proc, log)
        with urllib.request.urlopen(url + "/ui-settings", timeout=10) as response:
            settings = json.loads(response.read())
        assert settings["api_url"] == f"{url}/api"  # not 127.0.0.1:4200
        with urllib.request.urlopen(url + "/", timeout=10) as response:
            assert b"<html" in response.read().lower()
        assert (tmp_path / "state" / "prefect").is_dir()  # history under --state-dir
        below = descendants(proc.pid)
        assert below, "the Prefect server runs as a child of codexflow"
        # Ctrl-C in a terminal or `kill -INT` of the codexflow process only (not its group).
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 0, log.read_text()
        assert not [pid for pid in below if alive(pid)], log.read_text()
        with socket.socket() as sock:  # nobody listens on the port any more (TIME_WAIT is fine)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert f"export PREFECT_API_URL={url}/api" in log.read_text()
