"""The built-in tools, registered through the same pluggy hook as third-party plugins."""

from __future__ import annotations

from collections.abc import Callable

from codexflow.tools import files, git
from codexflow.tools.hooks import hookimpl
from codexflow.tools.memory import memory_get, memory_note, memory_search, memory_store
from codexflow.tools.registry import Tool, tool_from_function

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
    memory_note,
)


@hookimpl
def codexflow_register_tools(register: Callable[[Tool], None]) -> None:
    for func in BUILTINS:
        register(tool_from_function(func))
