"""Toolset: the tools one agent may call in one step, with permissions, approval and audit."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from codexflow.errors import ToolError
from codexflow.spec.models import McpToolSpec, PythonToolSpec, ShellToolSpec, Spec, WebToolSpec
from codexflow.tools.audit import AuditRecord, Outcome, hash_arguments
from codexflow.tools.context import ToolContext, ToolResult
from codexflow.tools.hooks import registered_tools
from codexflow.tools.mcp_client import McpServer, exposed_name, mcp_tools
from codexflow.tools.refusal import ToolRefused
from codexflow.tools.registry import Tool

MAX_ARGUMENT_BYTES = 1 << 20
# The built-in web tool exists only when the spec declares a `kind: web` tool (its hosts).
WEB_FETCH = "web_fetch"


class Toolset:
    """Calls never raise for the model's mistakes: they come back as ToolResult(ok=False)."""

    def __init__(
        self, tools: list[Tool], ctx: ToolContext, servers: list[McpServer] | None = None
    ) -> None:
        self.ctx = ctx
        self._tools = {tool.name: tool for tool in tools}
        self._servers = servers or []

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def schemas(self) -> list[dict[str, Any]]:
        """OpenAI tool definitions, in the order the spec lists them."""
        return [tool.schema() for tool in self._tools.values()]

    def call(self, name: str, arguments: str | dict[str, Any]) -> ToolResult:
        started = time.time()
        clock = time.perf_counter()
        try:
            result = self._call(name, arguments)
        except ToolError as exc:
            result = ToolResult(ok=False, content=exc.message, refused=isinstance(exc, ToolRefused))
        except Exception as exc:  # a bug in a tool must not end the agent's step
            result = ToolResult(ok=False, content=f"the tool failed: {type(exc).__name__}: {exc}")
        outcome: Outcome = "ok" if result.ok else ("refused" if result.refused else "error")
        self.ctx.audit.record(
            AuditRecord(
                run_id=self.ctx.run_id,
                step_id=self.ctx.step_id,
                agent=self.ctx.agent,
                tool=name,
                arguments_sha256=hash_arguments(arguments),
                outcome=outcome,
                duration_ms=round((time.perf_counter() - clock) * 1000, 3),
                result=result.content,
                started_at=started,
            )
        )
        return result

    def _call(self, name: str, arguments: str | dict[str, Any]) -> ToolResult:
        tool = self._tools.get(name) or self._tools.get(name.replace(".", "__", 1))
        if tool is None:
            allowed = ", ".join(self._tools) or "none"
            raise ToolRefused(
                f"refused: {self.ctx.agent} may not call {name!r} (allowed: {allowed})"
            )
        args = _parse_arguments(arguments)
        if tool.needs_approval(args):
            approve = self.ctx.approve
            if approve is None or not approve(tool.name, args):
                raise ToolRefused(f"refused: a person did not approve this call of {tool.name}")
        return ToolResult(ok=True, content=tool.run(self.ctx, args))

    def close(self) -> None:
        """Stop the MCP servers this toolset started."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()

    def __enter__(self) -> Toolset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _no_constant(name: str) -> Any:
    # NaN, Infinity and -Infinity are not JSON; Python's parser accepts them unless told not to.
    raise ValueError(f"{name} is not a JSON number")


def _check_finite(value: Any, depth: int = 0) -> None:
    """Refuse non-finite floats anywhere in arguments given as a dict (a model API's parse)."""
    if depth > 64:
        raise ToolError("arguments are nested too deeply")
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError(f"arguments must be finite numbers, got {value!r}")
    if isinstance(value, dict):
        for item in value.values():
            _check_finite(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_finite(item, depth + 1)


def _parse_arguments(arguments: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(arguments, dict):
        _check_finite(arguments)
        return arguments
    if not isinstance(arguments, str):
        raise ToolError("arguments must be a JSON object")
    if len(arguments.encode("utf-8", "surrogatepass")) > MAX_ARGUMENT_BYTES:
        raise ToolError("arguments are larger than 1 MiB")
    if not arguments.strip():
        return {}
    try:
        parsed = json.loads(arguments, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, huge ints, deep nesting
        raise ToolError(f"arguments are not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise ToolError("arguments must be a JSON object")
    return parsed


def build_toolset(
    spec: Spec, agent: str, ctx: ToolContext, *, protected: Iterable[str | Path] = ()
) -> Toolset:
    """The tools `agent` lists in `spec`, ready to call. Imports python tools and starts MCP servers.

    `protected` directories (the state dir) are added to the context: no tool reads or writes
    them. Raises ToolError for setup problems (unknown names, imports that fail, servers that do
    not start).
    """
    for path in protected:
        if Path(path) not in ctx.protected:
            ctx.protected.append(Path(path))
    if agent not in spec.agents:
        raise ToolError(f"no agent {agent!r} in the spec")
    agent_spec = spec.agents[agent]
    if ctx.writable is None and agent_spec.writable is not None:
        ctx.writable = list(agent_spec.writable)
    builtins = registered_tools()
    tools: list[Tool] = []
    servers: dict[str, McpServer] = {}
    try:
        for entry in agent_spec.tools:
            tools.extend(_resolve(entry, spec, ctx, builtins, servers))
    except BaseException:
        for server in servers.values():
            server.close()
        raise
    unique: dict[str, Tool] = {}
    for tool in tools:
        unique.setdefault(tool.name, tool)
    return Toolset(list(unique.values()), ctx, list(servers.values()))


def _resolve(
    entry: str,
    spec: Spec,
    ctx: ToolContext,
    builtins: dict[str, Tool],
    servers: dict[str, McpServer],
) -> list[Tool]:
    from codexflow.tools.pyref import python_tool
    from codexflow.tools.shell import shell_tool
    from codexflow.tools.web import web_tool

    server_name, _, remote = entry.partition(".")
    declared = spec.tools.get(entry) or spec.tools.get(server_name)
    if declared is None:
        if entry in builtins:
            return [builtins[entry]]
        if entry == WEB_FETCH:
            return [_web_fetch(spec)]
        raise ToolError(f"unknown tool {entry!r}: not a built-in and not under `tools:`")
    if isinstance(declared, ShellToolSpec):
        return [shell_tool(entry, declared)]
    if isinstance(declared, PythonToolSpec):
        return [
            python_tool(entry, declared, workspace=Path(ctx.workspace), protected=ctx.protected)
        ]
    if isinstance(declared, WebToolSpec):
        return [web_tool(entry, declared)]
    assert isinstance(declared, McpToolSpec)
    if server_name not in servers:
        server = McpServer(
            server_name,
            declared,
            ctx.workspace,
            protected=ctx.protected,
            allow_unsafe=ctx.allow_unsafe,
        )
        server.start()
        servers[server_name] = server
    server = servers[server_name]
    found = mcp_tools(server, {remote} if remote else None)
    if remote and not found:
        raise ToolError(
            f"MCP server {server_name!r} has no tool {remote!r} (or `include` leaves it out)"
        )
    return found


def _web_fetch(spec: Spec) -> Tool:
    from codexflow.tools.web import web_tool

    declared = [tool for tool in spec.tools.values() if isinstance(tool, WebToolSpec)]
    if not declared:
        raise ToolError("web_fetch needs a `kind: web` tool in the spec (the web is off otherwise)")
    hosts = sorted({host for tool in declared for host in tool.allow_hosts})
    approval = any(tool.approval for tool in declared)
    return web_tool(WEB_FETCH, WebToolSpec(kind="web", allow_hosts=hosts, approval=approval))


def resolve_workspace(spec: Spec, spec_path: str | Path) -> Path:
    """The workspace directory: `spec.workspace` relative to the spec file's directory."""
    return (Path(spec_path).resolve().parent / spec.workspace).resolve()


__all__ = ["Toolset", "build_toolset", "exposed_name", "resolve_workspace"]
