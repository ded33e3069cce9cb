"""`kind: python` spec tools: `module:function`, imported when a toolset is built (never at validation)."""

from __future__ import annotations

import importlib

from codexflow.errors import ToolError
from codexflow.spec.models import PythonToolSpec
from codexflow.tools.registry import Tool, tool_from_function


def python_tool(name: str, spec: PythonToolSpec) -> Tool:
    """Import the referenced function and describe it from its type hints and docstring."""
    module_name, _, attribute = spec.ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of user code is a setup error
        raise ToolError(f"tool {name!r}: cannot import {module_name!r}: {exc}") from exc
    func = getattr(module, attribute, None)
    if not callable(func):
        raise ToolError(f"tool {name!r}: {spec.ref!r} is not a function")
    return tool_from_function(
        func, name=name, description=spec.description or None, approval=spec.approval
    )
