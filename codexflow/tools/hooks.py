"""pluggy hook specifications for tool plugins, and the registry they fill (loaded lazily, once)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pluggy

from codexflow.errors import ToolError
from codexflow.tools.registry import Tool

PROJECT = "codexflow"
ENTRY_POINT_GROUP = "codexflow.tools"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class ToolHookSpecs:
    """Hooks a tool plugin may implement (built-ins use the same ones)."""

    @hookspec
    def codexflow_register_tools(self, register: Callable[[Tool], None]) -> None:
        """Call `register(tool)` once for each Tool the plugin provides."""


_lock = threading.Lock()
_manager: pluggy.PluginManager | None = None
_tools: dict[str, Tool] | None = None


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager: built-ins plus the `codexflow.tools` entry points."""
    global _manager
    with _lock:
        if _manager is None:
            from codexflow.tools import builtins

            manager = pluggy.PluginManager(PROJECT)
            manager.add_hookspecs(ToolHookSpecs)
            manager.register(builtins, name="codexflow.builtins")
            # Third-party code is imported only now, the first time a toolset is built.
            try:
                manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
            except Exception as exc:  # a broken plugin: say which group, keep the cause
                raise ToolError(f"a `{ENTRY_POINT_GROUP}` plugin failed to load: {exc}") from exc
            _manager = manager
        return _manager


def registered_tools() -> dict[str, Tool]:
    """Every registered tool by name; a name registered twice is an error, not a silent override."""
    global _tools
    manager = plugin_manager()
    with _lock:
        if _tools is None:
            found: dict[str, Tool] = {}

            def register(tool: Tool) -> None:
                if tool.name in found:
                    raise ToolError(f"tool {tool.name!r} is registered twice (by two plugins?)")
                found[tool.name] = tool

            manager.hook.codexflow_register_tools(register=register)
            _tools = found
        return dict(_tools)


def reset_registry() -> None:
    """Forget loaded plugins and tools (tests register plugins of their own)."""
    global _manager, _tools
    with _lock:
        _manager = None
        _tools = None
