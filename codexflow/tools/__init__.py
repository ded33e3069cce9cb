"""Tools agents call: registry, built-ins, spec tools (shell, python, MCP, web), confinement, sandbox."""

from __future__ import annotations

from codexflow.tools.audit import AuditLog, AuditRecord
from codexflow.tools.context import ToolContext, ToolResult
from codexflow.tools.hooks import hookimpl, registered_tools
from codexflow.tools.memory import InMemoryStore, MemoryHit, MemoryStore
from codexflow.tools.protection import describe_protection
from codexflow.tools.registry import Tool, tool_from_function
from codexflow.tools.toolset import Toolset, build_toolset, resolve_workspace

__all__ = [
    "AuditLog",
    "AuditRecord",
    "InMemoryStore",
    "MemoryHit",
    "MemoryStore",
    "Tool",
    "ToolContext",
    "ToolResult",
    "Toolset",
    "build_toolset",
    "describe_protection",
    "hookimpl",
    "registered_tools",
    "resolve_workspace",
    "tool_from_function",
]
