"""`kind: mcp` spec tools: a stdio MCP server driven from a private event loop thread."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from codexflow.errors import ToolError
from codexflow.spec.models import McpToolSpec
from codexflow.tools.context import ToolContext
from codexflow.tools.files import cap_text
from codexflow.tools.registry import TOOL_NAME, Tool

START_TIMEOUT = 30.0
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def exposed_name(server: str, tool: str) -> str:
    """`server.tool` as the model sees it: function names may not contain dots."""
    return f"{server}__{tool}"


def _expand_env(env: dict[str, str]) -> dict[str, str]:
    return {
        key: _VAR.sub(lambda m: os.environ.get(m.group(1), ""), value) for key, value in env.items()
    }


class McpServer:
    """One running MCP server: started by `start()`, stopped by `close()`, callable meanwhile."""

    def __init__(self, name: str, spec: McpToolSpec, cwd: Path) -> None:
        self.name = name
        self.spec = spec
        self.cwd = cwd
        self.tools: list[Any] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"mcp-{name}", daemon=True
        )
        self._session: Any = None
        self._stop: asyncio.Event | None = None
        self._main: Future[None] | None = None
        self._ready = threading.Event()
        # The server's stderr, kept for error messages; closed in close().
        self._errlog = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115

    def start(self) -> None:
        self._thread.start()
        self._main = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ready.wait(0.05) and not self._main.done() and time.monotonic() < deadline:
            pass
        if not self._ready.is_set() or self._main.done():
            error = None if not self._main.done() else self._main.exception()
            self.close()
            raise ToolError(
                f"MCP server {self.name!r} did not start: {error or 'timed out'}{self._stderr()}"
            )

    async def _serve(self) -> None:
        from mcp import ClientSession, StdioServerParameters, stdio_client

        params = StdioServerParameters(
            command=self.spec.command[0],
            args=list(self.spec.command[1:]),
            env=_expand_env(dict(self.spec.env)),
            cwd=str(self.cwd),
        )
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
            if self._main is not None:
                try:
                    self._main.result(timeout=10)
                except Exception:
                    self._main.cancel()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()
        self._errlog.close()

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
