"""`kind: mcp` spec tools: a stdio MCP server driven from a private event loop thread.

The server runs in the same sandbox as shell tools (bubblewrap: the workspace and /usr, no
network unless the spec grants it, a seccomp filter, limits), with its cwd outside the
workspace (`python -m mod` cannot import a module an agent wrote) and a clean environment.
Only `trusted: true` runs it on the host. Whatever happens, its whole process tree is killed
when it stops or fails to start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from codexflow.errors import ToolError
from codexflow.spec.models import McpToolSpec
from codexflow.tools.cgroup import MemoryCgroup, PidsCgroup
from codexflow.tools.context import ToolContext
from codexflow.tools.files import cap_text
from codexflow.tools.refusal import ToolRefused
from codexflow.tools.registry import TOOL_NAME, Tool
from codexflow.tools.sandbox import SAFE_PATH, Limits, bwrap_argv, bwrap_works
from codexflow.tools.seccomp import seccomp_program

START_TIMEOUT = 30.0
STOP_TIMEOUT = 8.0
MCP_LIMITS = Limits()


def _quiet_sdk_logging() -> None:
    # The SDK logs a full traceback for every line of garbage a server prints on stdout; the
    # session already turns it into an error the model reads.
    logger = logging.getLogger("mcp.client.stdio")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    logger.propagate = False


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def exposed_name(server: str, tool: str) -> str:
    """`server.tool` as the model sees it: function names may not contain dots."""
    return f"{server}__{tool}"


def _expand_env(env: dict[str, str]) -> dict[str, str]:
    return {
        key: _VAR.sub(lambda m: os.environ.get(m.group(1), ""), value) for key, value in env.items()
    }


def describe_error(exc: BaseException | None) -> str:
    """The leaf causes of an error, without `unhandled errors in a TaskGroup` wrappers."""
    if exc is None:
        return "timed out"
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(dict.fromkeys(describe_error(e) for e in exc.exceptions))
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class McpServer:
    """One running MCP server: started by `start()`, stopped by `close()`, callable meanwhile."""

    def __init__(
        self,
        name: str,
        spec: McpToolSpec,
        workspace: Path,
        *,
        protected: Iterable[str | Path] = (),
        allow_unsafe: bool = False,
    ) -> None:
        self.name = name
        self.spec = spec
        self.workspace = Path(workspace).resolve()
        self.protected = list(protected)
        self.allow_unsafe = allow_unsafe
        self.tools: list[Any] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"mcp-{name}", daemon=True
        )
        self._session: Any = None
        self._stop: asyncio.Event | None = None
        self._main: Future[None] | None = None
        self._ready = threading.Event()
        self._finished = threading.Event()
        # The server's stderr, kept for error messages; closed in close().
        self._errlog = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115
        # Its own directory outside the workspace: cwd, pid file, the seccomp program.
        self._private = Path(tempfile.mkdtemp(prefix="codexflow-mcp-"))
        self._groups: list[PidsCgroup | MemoryCgroup] = []
        self.last_stderr = ""

    def start(self) -> None:
        _quiet_sdk_logging()
        try:
            command, cwd, env = self._command()
        except BaseException:
            self.close()
            raise
        self._thread.start()
        self._main = asyncio.run_coroutine_threadsafe(self._serve(command, cwd, env), self._loop)
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ready.wait(0.05) and not self._main.done() and time.monotonic() < deadline:
            pass
        if not self._ready.is_set() or self._main.done():
            error = None if not self._main.done() else self._main.exception()
            self.close()
            raise ToolError(
                f"MCP server {self.name!r} did not start: {describe_error(error)}{self.last_stderr}"
            )

    def _command(self) -> tuple[list[str], str, dict[str, str]]:
        """argv (through a wrapper that records the pid), cwd and environment of the server."""
        argv = list(self.spec.command)
        pidfile = str(self._private / "pid")
        env = {"PATH": SAFE_PATH, "HOME": "/tmp", "LANG": "C.UTF-8", "USER": "sandbox",
               "LOGNAME": "sandbox", "SHELL": "/bin/sh", "TERM": "dumb",
               **_expand_env(dict(self.spec.env))}  # fmt: skip
        sandboxed = not self.spec.trusted
        if sandboxed and not bwrap_works():
            if not self.allow_unsafe:
                raise ToolRefused(
                    f"refused: MCP server {self.name!r} runs in the sandbox, and bubblewrap is "
                    "not available (mark it `trusted: true` to run it on the host)"
                )
            sandboxed = False
        if not sandboxed:
            cwd = str(self._private / "cwd")
            os.mkdir(cwd)
            env["PATH"] = os.environ.get("PATH", SAFE_PATH)  # a host program: the user's PATH
            wrapper = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', pidfile]
            return self._limited(wrapper, argv), cwd, env
        program = seccomp_program()
        read_only = [
            str(p if Path(p).is_absolute() else self.workspace / p) for p in self.spec.read_only
        ]
        inner = bwrap_argv(
            self.workspace,
            argv,
            protected=self.protected,
            network=self.spec.network,
            cwd="/tmp",
            tmp_size=MCP_LIMITS.tmp_size,
            seccomp=3 if program is not None else None,
            read_only=read_only,
        )
        if program is not None:
            filter_path = self._private / "seccomp.bpf"
            filter_path.write_bytes(program)
            wrapper = ["/bin/sh", "-c", 'echo $$ > "$0" && exec 3< "$1" && shift && exec "$@"',
                       pidfile, str(filter_path)]  # fmt: skip
        else:
            wrapper = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', pidfile]
        return self._limited(wrapper, inner), str(self._private), env

    def _limited(self, wrapper: list[str], argv: list[str]) -> list[str]:
        """The wrapper, the cgroups, file-size and process limits (no CPU limit: it lives long)."""
        command = list(argv)
        prlimit = shutil.which("prlimit")
        if prlimit is not None:
            command = [prlimit, f"--fsize={MCP_LIMITS.file_size}",
                       f"--nproc={MCP_LIMITS.processes}", "--core=0", "--", *command]  # fmt: skip
        with contextlib.suppress(OSError):
            self._groups.append(PidsCgroup(MCP_LIMITS.processes))
        with contextlib.suppress(OSError):
            self._groups.append(MemoryCgroup(MCP_LIMITS.memory))
        for group in self._groups:
            command = group.enter_argv(command)
        return [*wrapper, *command]

    async def _serve(self, command: list[str], cwd: str, env: dict[str, str]) -> None:
        try:
            await self._session_loop(command, cwd, env)
        finally:
            self._finished.set()

    async def _session_loop(self, command: list[str], cwd: str, env: dict[str, str]) -> None:
        from mcp import ClientSession, StdioServerParameters, stdio_client

        params = StdioServerParameters(command=command[0], args=command[1:], env=env, cwd=cwd)
        self._stop = asyncio.Event()
        async with stdio_client(params, errlog=self._errlog) as (read, write):  # noqa: SIM117
            async with ClientSession(
                read, write, read_timeout_seconds=self.spec.timeout
            ) as session:
                await session.initialize()
                listed, cursor = [], None
                for _ in range(100):  # pages
                    page = await session.list_tools(params=_page(cursor))
                    listed.extend(page.tools)
                    cursor = page.next_cursor
                    if not cursor:
                        break
                self.tools = listed
                self._session = session
                self._ready.set()
                await self._stop.wait()

    def call(self, tool: str, arguments: dict[str, Any]) -> tuple[bool, str]:
        if self._session is None or not self._loop.is_running():
            raise ToolError(f"MCP server {self.name!r} is not running")
        coroutine = self._session.call_tool(tool, arguments, read_timeout_seconds=self.spec.timeout)
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        except RuntimeError:  # the loop stopped in between
            coroutine.close()
            raise ToolError(f"MCP server {self.name!r} is not running") from None
        try:
            result = future.result(timeout=self.spec.timeout + 5)
        except FutureTimeout:
            future.cancel()
            raise ToolError(f"{self.name}.{tool} timed out after {self.spec.timeout:g} s") from None
        except Exception as exc:  # protocol errors from the server are the model's to read
            raise ToolError(f"{self.name}.{tool} failed: {exc}") from None
        parts = []
        for block in result.content:
            text = getattr(block, "text", None)
            parts.append(
                text if isinstance(text, str) else f"[{getattr(block, 'type', 'content')}]"
            )
        return (not result.is_error), cap_text("\n".join(parts) or "(no content)")

    def close(self) -> None:
        self._session = None
        if self._thread.is_alive():
            if self._stop is not None:
                self._loop.call_soon_threadsafe(self._stop.set)
            if self._main is not None and not self._finished.wait(STOP_TIMEOUT):
                # Still starting (or hung): cancel it; the SDK's shielded shutdown then stops
                # the server. Wait for that before the loop goes away.
                self._main.cancel()
                self._finished.wait(STOP_TIMEOUT)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._kill_tree()
        if not self._loop.is_running():
            self._loop.close()
        self.last_stderr = self._stderr()  # complete now: the server is gone
        self._errlog.close()
        shutil.rmtree(self._private, ignore_errors=True)

    def _kill_tree(self) -> None:
        """Whatever is left of the server: its process group, then every cgroup member."""
        with contextlib.suppress(OSError, ValueError):
            pid = int((self._private / "pid").read_text().strip())
            if os.getpgid(pid) == pid:  # the session leader the SDK started, still there
                os.killpg(pid, signal.SIGKILL)
        groups, self._groups = self._groups, []
        for group in groups:
            if isinstance(group, PidsCgroup):
                group.kill_all()
            group.remove()

    def _stderr(self) -> str:
        try:
            self._errlog.seek(0)
            text = self._errlog.read()[-2000:]
        except (OSError, ValueError):
            return ""
        return f"\n{text}" if text else ""


def _page(cursor: str | None) -> Any:
    if cursor is None:
        return None
    from mcp import types

    return types.PaginatedRequestParams(cursor=cursor)


def mcp_tools(server: McpServer, only: set[str] | None = None) -> list[Tool]:
    """Tools of a running server (those in `include`, and in `only` when given)."""
    include = set(server.spec.include) if server.spec.include is not None else None
    tools = []
    for listed in server.tools:
        if include is not None and listed.name not in include:
            continue
        if only is not None and listed.name not in only:
            continue
        name = exposed_name(server.name, listed.name)
        if not TOOL_NAME.match(name):
            continue  # a name no model API accepts
        tools.append(
            _wrap(server, listed.name, name, listed.description or "", listed.input_schema)
        )
    return tools


def _wrap(
    server: McpServer, remote: str, name: str, description: str, schema: dict[str, Any]
) -> Tool:
    def run(ctx: ToolContext, arguments: dict[str, Any]) -> str:
        ok, text = server.call(remote, arguments)
        if not ok:
            raise ToolError(text)
        return text

    return Tool(
        name=name,
        description=description or f"{remote} (MCP server {server.name})",
        parameters=dict(schema or {"type": "object", "properties": {}}),
        run=run,
        approval=server.spec.approval,
    )
