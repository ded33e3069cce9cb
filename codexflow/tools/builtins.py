"""The built-in tools, registered through the same pluggy hook as third-party plugins."""

from __future__ import annotations

import json
from collections.abc import Callable

from codexflow.errors import ToolError
from codexflow.tools import files, git
from codexflow.tools.context import ToolContext
from codexflow.tools.hooks import hookimpl
from codexflow.tools.memory import MemoryStore
from codexflow.tools.registry import Tool, tool_from_function


def _memory(ctx: ToolContext) -> MemoryStore:
    if ctx.memory is None:
        raise ToolError("shared memory is not available in this run")
    return ctx.memory


def memory_store(ctx: ToolContext, key: str, value: str) -> str:
    """Save a value under a key in the swarm's shared memory (overwrites)."""
    if not key.strip():
        raise ToolError("a key is required")
    _memory(ctx).put(key, value)
    return f"stored {key}"


def memory_get(ctx: ToolContext, key: str) -> str:
    """Read the value saved under a key in the swarm's shared memory."""
    value = _memory(ctx).get(key)
    if value is None:
        raise ToolError(f"no memory under {key!r}")
    return value


def memory_search(ctx: ToolContext, query: str, limit: int = 5) -> str:
    """Find entries of the swarm's shared memory related to the query."""
    hits = _memory(ctx).search(query, limit=max(1, min(limit, 50)))
    return json.dumps(
        [{"key": h.key, "value": h.value, "score": h.score} for h in hits], ensure_ascii=False
    )


BUILTINS: tuple[Callable[..., str], ...] = (
    files.read_file,
    files.write_file,
    files.edit_file,
    files.list_files,
    files.grep,
    git.git_status,
    git.git_diff,
    git.git_commit,
    memory_store,
    memory_get,
    memory_search,
)


@hookimpl
def codexflow_register_tools(register: Callable[[Tool], None]) -> None:
    for func in BUILTINS:
        register(tool_from_function(func))
