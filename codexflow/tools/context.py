"""What a tool call sees (ToolContext) and what it gives back (ToolResult)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from codexflow.tools.audit import AuditLog
from codexflow.tools.memory import MemoryStore


@dataclass
class ToolContext:
    """Everything a tool call may use besides its arguments; one per agent step."""

    workspace: Path
    run_id: str
    step_id: str
    agent: str
    audit: AuditLog
    # Asked (tool name, arguments) before tools that need approval; None denies them all.
    approve: Callable[[str, dict], bool] | None = None
    # Glob patterns relative to the workspace that writes may touch; None = anywhere inside.
    writable: list[str] | None = None
    # Run shell tools without bubblewrap when it is missing (never the default).
    allow_unsafe: bool = False
    memory: MemoryStore | None = None
    # Directories no tool may read or write wherever they are (the state dir: run records, the
    # cache, Prefect's home); file tools refuse them, the sandbox masks them.
    protected: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class ToolResult:
    """The outcome the model reads: `content` is its text, `ok` False for errors and refusals."""

    ok: bool
    content: str
    refused: bool = False
