"""MCP servers: listed and called through a Toolset, sandboxed, and never left running."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from codexflow.errors import ToolError
from codexflow.tools import ToolContext, Toolset, mcp_client
from codexflow.tools import sandbox as sandbox_module

HERE = Path(__file__).parent
SERVER = str(HERE / "mcp_echo_server.py")
CANARY = "CANARY-7f3a9c-do-not-leak"
# What a sandboxed Python server must be able to read: the interpreter, the venv, this file.
PYTHON_PATHS = sorted({sys.prefix, sys.base_prefix, str(HERE)})


def _spec(command: list[str] | None = None, **extra: object) -> dict:
    return {
        "echo": {
            "kind": "mcp",
            "command": command or [sys.executable, SERVER],
            "read_only": PYTHON_PATHS,
            **extra,
        }
    }


def _survivors(marker: str) -> list[str]:
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True)
    return [line for line in ps.stdout.splitlines() if marker in line and "ps -eo" not in line]


@pytest.mark.usefixtures("sandbox")
def test_mcp_tools_are_listed_and_called(toolset: Callable[..., Toolset]) -> None:
    tools = toolset(["echo", "read_file"], _spec())
    names = [s["function"]["name"] for s in tools.schemas()]
    assert names == ["echo__echo", "echo__add", "read_file"]
    add = next(s for s in tools.schemas() if s["function"]["name"] == "echo__add")
    assert add["function"]["description"] == "Add two integers."
    assert add["function"]["parameters"]["required"] == ["a", "b"]
    assert tools.call("echo__add", {"a": 2, "b": 3}).content == "5"
    assert tools.call("echo.echo", '{"text": "hi"}').content == "echo: hi"
    wrong = tools.call("echo__add", {"a": "two", "b": 3})
    assert not wrong.ok
    tools.close()
    after = tools.call("echo__add", {"a": 1, "b": 1})
    assert not after.ok


@pytest.mark.usefixtures("sandbox")
def test_single_mcp_tool_and_include(toolset: Callable[..., Toolset]) -> None:
    only = toolset(["echo.add"], _spec())
    assert [s["function"]["name"] for s in only.schemas()] == ["echo__add"]
    included = toolset(["echo"], _spec(include=["echo"]))
    assert [s["function"]["name"] for s in included.schemas()] == ["echo__echo"]
    assert included.call("echo__add", {"a": 1, "b": 2}).refused
    with pytest.raises(ToolError, match="no tool 'missing'"):
        toolset(["echo.missing"], _spec())


# A server that reports what it can see and do, from inside whatever runs it.
PROBE = r"""
import os, socket, sys
from mcp.server.mcpserver import MCPServer
server = MCPServer("probe")

@server.tool()
def probe(secret: str, host_port: int, host_pid: int) -> str:
    '''Report what this server can reach.'''
    out = [f"cwd={os.getcwd()}"]
    for key, value in os.environ.items():
        out.append(f"env {key}={value}")
    try:
        out.append("secret=" + open(secret).read())
    except OSError as exc:
        out.append(f"secret: {exc.strerror}")
    try:
        socket.create_connection(("127.0.0.1", host_port), timeout=2).close()
        out.append("network: connected")
    except OSError as exc:
        out.append(f"network: {exc.strerror}")
    try:
        out.append("host process: " + open(f"/proc/{host_pid}/environ").read())
    except OSError:
        out.append("host process: not visible")
    return "\n".join(out)

server.run()
"""


@pytest.mark.usefixtures("sandbox")
def test_mcp_server_runs_sandboxed_by_default(
    toolset: Callable[..., Toolset],
    workspace: Path,
    outside: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    script = tmp_path / "probe_server.py"
    script.write_text(PROBE)
    spec = _spec([sys.executable, str(script)])
    spec["echo"]["read_only"] = [*PYTHON_PATHS, str(script)]
    tools = toolset(["echo"], spec)
    result = tools.call(
        "echo__probe",
        {"secret": str(outside / "secret.txt"), "host_port": port, "host_pid": os.getpid()},
    )
    listener.close()
    assert result.ok, result.content
    assert CANARY not in result.content  # neither the outside file nor the caller's API key
    assert "secret: No such file or directory" in result.content
    assert "network: connected" not in result.content
    assert "cwd=/tmp" in result.content and f"cwd={workspace}" not in result.content
    assert "host process: not visible" in result.content or CANARY not in result.content


@pytest.mark.usefixtures("sandbox")
def test_network_is_granted_only_by_the_spec(
    toolset: Callable[..., Toolset], outside: Path, tmp_path: Path
) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    script = tmp_path / "probe_server.py"
    script.write_text(PROBE)
    spec = _spec([sys.executable, str(script)], network=True)
    spec["echo"]["read_only"] = [*PYTHON_PATHS, str(script)]
    arguments = {"secret": str(outside / "secret.txt"), "host_port": listener.getsockname()[1],
                 "host_pid": os.getpid()}  # fmt: skip
    result = toolset(["echo"], spec).call("echo__probe", arguments)
    listener.close()
    assert "network: connected" in result.content, result.content
    assert CANARY not in result.content  # the network, and still no host files


@pytest.mark.usefixtures("sandbox")
def test_python_dash_m_cannot_import_a_module_an_agent_wrote(
    toolset: Callable[..., Toolset], workspace: Path, tmp_path: Path
) -> None:
    """`python -m mcp_echo_server` with a planted mcp_echo_server.py in the workspace."""
    sentinel = tmp_path / "planted-ran"
    for where in (workspace, workspace / ".codexflow"):
        where.mkdir(exist_ok=True)
        (where / "cfx_planted_mod.py").write_text(f"open({str(sentinel)!r}, 'w').write('ran')\n")
    spec = _spec([sys.executable, "-m", "cfx_planted_mod"], read_only=PYTHON_PATHS)
    with pytest.raises(ToolError, match="did not start"):
        toolset(["echo"], spec)
    assert not sentinel.exists()


def test_mcp_server_refuses_without_bubblewrap(
    toolset: Callable[..., Toolset], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mcp_client, "bwrap_works", lambda: False)
    monkeypatch.setattr(sandbox_module, "bwrap_works", lambda: False)
    with pytest.raises(ToolError, match="bubblewrap"):
        toolset(["echo"], _spec())
    trusted = toolset(["echo"], _spec(trusted=True))  # the user's explicit choice
    assert trusted.call("echo__add", {"a": 1, "b": 2}).content == "3"


@pytest.mark.usefixtures("sandbox")
def test_a_hung_server_is_killed_after_its_start_timeout(
    toolset: Callable[..., Toolset], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mcp_client, "START_TIMEOUT", 1.0)
    monkeypatch.setattr(mcp_client, "STOP_TIMEOUT", 1.0)
    marker = f"cfx-hung-{uuid.uuid4().hex[:8]}"
    # Never answers `initialize`, and leaves a child of its own behind.
    script = f"sh -c 'sleep 1000; : {marker}-child' & sleep 1000; : {marker}"
    with pytest.raises(ToolError, match="did not start: timed out"):
        toolset(["echo"], _spec(["sh", "-c", script]))
    assert _survivors(marker) == []


@pytest.mark.usefixtures("sandbox")
def test_a_server_that_dies_at_start_shows_its_stderr(toolset: Callable[..., Toolset]) -> None:
    command = ["sh", "-c", "echo 'cfx: missing config file /etc/cfx.conf' >&2; exit 3"]
    with pytest.raises(ToolError) as raised:
        toolset(["broken"], {"broken": {"kind": "mcp", "command": command}})
    message = str(raised.value)
    assert "did not start" in message
    assert "missing config file /etc/cfx.conf" in message
    assert "TaskGroup" not in message


DRIVER = """
import sys
from pathlib import Path
from codexflow.spec.models import Spec
from codexflow.tools import AuditLog, ToolContext, build_toolset
from codexflow.errors import ToolError
script, paths, ws = sys.argv[1], sys.argv[2].split(":"), Path(sys.argv[3])
spec = Spec.model_validate({
    "apiVersion": "codexflow/v1", "name": "t",
    "agents": {"a": {"role": "coder", "tools": ["noisy"]}},
    "tools": {"noisy": {"kind": "mcp", "command": [sys.executable, script],
                        "read_only": [*paths, script]}},
    "tasks": {"t": {"agent": "a", "prompt": "x"}},
})
ctx = ToolContext(workspace=ws, run_id="r", step_id="s", agent="a", audit=AuditLog())
try:
    with build_toolset(spec, "a", ctx) as tools:
        print("call:", tools.call("noisy__add", {"a": 1, "b": 1}).content)
except ToolError as exc:
    print("refused:", str(exc).splitlines()[0])
"""


@pytest.mark.usefixtures("sandbox")
def test_garbage_on_stdout_prints_no_traceback(workspace: Path, tmp_path: Path) -> None:
    """Run as a program, where the SDK's log records would reach the terminal."""
    script = tmp_path / "noisy_server.py"
    script.write_text(
        "import sys\nprint('this is not JSON-RPC', flush=True)\n"
        f"sys.argv = [{SERVER!r}]\nexec(open({SERVER!r}).read())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(script), ":".join(PYTHON_PATHS), str(workspace)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "call: 2" in done.stdout or "refused:" in done.stdout, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def test_mcp_ctx_is_unused_by_default(ctx: ToolContext) -> None:
    assert ctx.protected == []  # what the tools fixture gives: nothing protected unless told
