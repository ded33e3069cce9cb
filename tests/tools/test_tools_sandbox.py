"""Shell tools in the sandbox: secrets, network, fork bombs, process trees, output floods, injection."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from codexflow.tools import ToolContext, Toolset
from codexflow.tools import sandbox as sandbox_module
from codexflow.tools.cgroup import pids_cgroup_parent

CANARY = "CANARY-7f3a9c-do-not-leak"  # what conftest plants outside the workspace

pytestmark = pytest.mark.usefixtures("sandbox")
PYTHON = shutil.which("python3", path="/usr/bin:/bin")


def _survivors(marker: str) -> list[str]:
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True)
    return [line for line in ps.stdout.splitlines() if marker in line and "ps -eo" not in line]


def test_environment_is_cleared(
    toolset: Callable[..., Toolset], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_API_KEY", CANARY)
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    result = toolset(["env"], {"env": {"kind": "shell", "command": ["env"]}}).call("env", {})
    assert result.ok, result.content
    assert "PATH=" in result.content and "HOME=/tmp" in result.content
    assert CANARY not in result.content and "FAKE_API_KEY" not in result.content


class _Listener:
    """TCP and UDP sockets on the host's 127.0.0.1 that count what reaches them."""

    def __init__(self) -> None:
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(8)
        self.tcp.settimeout(0.1)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(0.1)
        self.received = 0
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        for _ in range(10_000):
            if self.stop.is_set():
                return
            try:
                conn, _ = self.tcp.accept()
                self.connections += 1
                with conn:
                    conn.settimeout(0.5)
                    self.received += len(conn.recv(4096))
            except OSError:
                pass
            with contextlib.suppress(OSError):
                self.received += len(self.udp.recv(4096))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.tcp.close()
        self.udp.close()


@pytest.fixture
def listener() -> Iterator[_Listener]:
    item = _Listener()
    yield item
    item.close()


SEND = """
import socket, sys
tcp, udp = int(sys.argv[1]), int(sys.argv[2])
try:
    s = socket.create_connection(("127.0.0.1", tcp), timeout=1); s.sendall(b"tcp-leak"); s.close()
    print("tcp sent")
except OSError as e:
    print("tcp blocked:", e)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(5):
    try:
        u.sendto(b"udp-leak", ("127.0.0.1", udp))
    except OSError as e:
        print("udp blocked:", e)
print("done")
"""


@pytest.mark.skipif(PYTHON is None, reason="needs /usr/bin/python3")
def test_no_network_to_host_loopback(toolset: Callable[..., Toolset], listener: _Listener) -> None:
    tcp_port, udp_port = listener.tcp.getsockname()[1], listener.udp.getsockname()[1]
    # The probe works: run directly on the host, the listener hears it.
    subprocess.run(
        [PYTHON, "-c", SEND, str(tcp_port), str(udp_port)], check=True, capture_output=True
    )
    deadline = time.monotonic() + 5
    while (
        listener.received < len(b"tcp-leak") + 5 * len(b"udp-leak") and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert listener.connections == 1 and listener.received == 8 + 5 * 8
    listener.received = listener.connections = 0

    spec = {"send": {"kind": "shell", "command": [PYTHON, "-c", SEND, "{{ tcp }}", "{{ udp }}"],
                     "args": {"tcp": {"type": "integer"}, "udp": {"type": "integer"}}}}  # fmt: skip
    result = toolset(["send"], spec).call("send", {"tcp": tcp_port, "udp": udp_port})
    assert "done" in result.content and "tcp sent" not in result.content
    time.sleep(0.3)
    assert listener.connections == 0 and listener.received == 0


@pytest.mark.skipif(
    os.geteuid() == 0 and pids_cgroup_parent() is None,
    reason="as root without a pids cgroup nothing but the timeout bounds a fork bomb",
)
def test_fork_bomb_is_bounded(toolset: Callable[..., Toolset]) -> None:
    marker = f"cfx-bomb-{uuid.uuid4().hex[:8]}"
    spec = {"bomb": {"kind": "shell", "command": ["sh", "-c", "b() { b | b & }; b; sleep 30", marker],
                     "timeout": 4}}  # fmt: skip
    started = time.monotonic()
    result = toolset(["bomb"], spec).call("bomb", {})
    assert time.monotonic() - started < 15
    assert not result.ok and "timed out" in result.content
    assert "fork" in result.content.lower()  # the process limit, not only the timeout, held
    time.sleep(0.2)
    assert _survivors(marker) == []
    assert subprocess.run(["true"]).returncode == 0  # the machine still forks


def test_endless_process_tree_is_killed_at_the_timeout(
    toolset: Callable[..., Toolset], ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = f"cfx-tree-{uuid.uuid4().hex[:8]}"
    script = 'while :; do sh -c "sleep 1000; :" "$0-child" & sleep 0.05; done'
    spec = {"tree": {"kind": "shell", "command": ["sh", "-c", script, marker], "timeout": 1.5}}
    for unsafe in (False, True):
        if unsafe:  # also without bubblewrap: the process group and the cgroup are killed
            monkeypatch.setattr(sandbox_module, "bwrap_works", lambda: False)
            ctx.allow_unsafe = True
        started = time.monotonic()
        result = toolset(["tree"], spec).call("tree", {})
        assert 1.4 < time.monotonic() - started < 10
        assert "timed out after 1.5 s" in result.content
        time.sleep(0.2)
        assert _survivors(marker) == []


def test_output_flood_is_capped_and_memory_bounded(toolset: Callable[..., Toolset]) -> None:
    spec = {
        "flood": {"kind": "shell", "command": "sh -c 'yes 0123456789abcdef | head -c 100000000'"}
    }
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = toolset(["flood"], spec).call("flood", {})
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert result.ok
    assert len(result.content) < 70_000
    assert "[... truncated 99934" in result.content
    assert grown_kib < 40_000


def test_arguments_are_single_literal_words(
    toolset: Callable[..., Toolset], workspace: Path
) -> None:
    spec = {
        "say": {"kind": "shell", "command": "echo {{ text }}", "args": {"text": {"type": "string"}}},
        "say_sh": {"kind": "shell", "command": ["sh", "-c", 'printf "%s|" "$@"', "sh", "{{ text }}"],
                   "args": {"text": {"type": "string"}}},
    }  # fmt: skip
    tools = toolset(["say", "say_sh"], spec)
    attacks = ["x; touch pwned1", "$(touch pwned2)", "`touch pwned3`", "a && touch pwned4", "x\ntouch pwned5",
               "x | touch pwned6", "'; touch pwned7; '"]  # fmt: skip
    for text in attacks:
        echoed = tools.call("say", {"text": text})
        assert echoed.ok and echoed.content == f"exit code: 0\n{text}"
        printed = tools.call("say_sh", {"text": text})
        assert printed.ok and printed.content == f"exit code: 0\n{text}|"
    assert not list(workspace.glob("pwned*"))


def test_typed_arguments_are_validated(toolset: Callable[..., Toolset]) -> None:
    spec = {"t": {"kind": "shell", "command": ["echo", "{{ n }}", "{{ mode }}", "{{ ref }}"],
                  "args": {"n": {"type": "integer"}, "mode": {"type": "string", "enum": ["fast", "slow"]},
                           "ref": {"type": "string", "pattern": "[a-z0-9]+", "default": "main"}}}}  # fmt: skip
    tools = toolset(["t"], spec)
    assert tools.call("t", {"n": 3, "mode": "fast"}).content.endswith("3 fast main")
    for bad in [{"n": "3", "mode": "fast"}, {"n": True, "mode": "fast"}, {"n": 1, "mode": "quick"},
                {"n": 1, "mode": "fast", "ref": "../x"}, {"n": 1}, {"n": 1, "mode": "fast", "extra": 1}]:  # fmt: skip
        assert not tools.call("t", bad).ok, bad
    options = toolset(["o"], {"o": {"kind": "shell", "command": "echo {{ x }}", "args": {"x": {}}}})
    assert "option" in options.call("o", {"x": "--help"}).content


def test_no_host_files_inside(toolset: Callable[..., Toolset], outside: Path, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text(CANARY)
    (home / ".bashrc").write_text(CANARY)
    monkeypatch.setenv("HOME", str(home))
    script = ('cat "$1" "$2/.ssh/id_rsa" ~/.ssh/id_rsa /proc/1/root"$1" /etc/shadow; '
              'echo pwned > "$1"; echo pwned >> "$2/.bashrc"; echo pwned >> ~/.bashrc; echo end')  # fmt: skip
    spec = {"probe": {"kind": "shell", "command": ["sh", "-c", script, "sh", "{{ secret }}", "{{ home }}"],
                      "args": {"secret": {}, "home": {}}}}  # fmt: skip
    result = toolset(["probe"], spec).call(
        "probe", {"secret": str(outside / "secret.txt"), "home": str(home)}
    )
    assert "end" in result.content and CANARY not in result.content
    assert (outside / "secret.txt").read_text() == CANARY
    assert (home / ".bashrc").read_text() == CANARY


def test_fails_closed_without_bubblewrap(
    toolset: Callable[..., Toolset], ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox_module, "bwrap_works", lambda: False)
    tools = toolset(["hi"], {"hi": {"kind": "shell", "command": "echo hi"}})
    refused = tools.call("hi", {})
    assert refused.refused and "bubblewrap" in refused.content
    ctx.allow_unsafe = True
    assert tools.call("hi", {}).content == "exit code: 0\nhi"


def test_kernel_settings_are_read_only_inside(toolset: Callable[..., Toolset]) -> None:
    # access(2) only: nothing is written even if the protection were missing.
    script = "for f in /proc/sys/kernel/core_pattern /proc/sys/vm/drop_caches; do test -w $f && echo W:$f; done; echo end"
    result = toolset(["probe"], {"probe": {"kind": "shell", "command": ["sh", "-c", script]}}).call(
        "probe", {}
    )
    assert result.content == "exit code: 0\nend"
