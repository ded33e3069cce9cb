"""`kind: python` spec tools: `module:function`, imported when a toolset is built (never at validation).

A python tool runs in codexflow's own process. Unless the spec marks it `trusted: true`, a ref
into the standard library or another package that reaches the host is refused (as `validate`
does), and so is a module that would be imported from the workspace or the state dir: files an
agent can write must never become code that codexflow runs.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable
from pathlib import Path

from codexflow.errors import ToolError
from codexflow.spec.models import PythonToolSpec
from codexflow.spec.pyrefs import ref_problem
from codexflow.tools.refusal import ToolRefused
from codexflow.tools.registry import Tool, tool_from_function


def _origin(module_name: str) -> Path | None:
    """Where the top-level package of `module_name` would be imported from (nothing is run)."""
    top = module_name.split(".", 1)[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    places = [spec.origin] if spec.origin else []
    places += list(spec.submodule_search_locations or [])
    for place in places:
        if place and place not in ("built-in", "frozen"):
            return Path(place).resolve()
    return None


def _inside(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def python_tool(
    name: str,
    spec: PythonToolSpec,
    *,
    workspace: Path | None = None,
    protected: Iterable[Path] = (),
) -> Tool:
    """Import the referenced function and describe it from its type hints and docstring."""
    module_name, _, attribute = spec.ref.partition(":")
    if not spec.trusted:
        problem = ref_problem(spec.ref)
        if problem is not None:
            raise ToolRefused(f"tool {name!r}: refused ref {spec.ref!r}: {problem} "
                              "(mark it `trusted: true` if a person vouches for it)")  # fmt: skip
        roots = [Path(p).resolve() for p in [*([workspace] if workspace else []), *protected]]
        origin = _origin(module_name)
        if origin is not None and _inside(origin, roots):
            raise ToolRefused(
                f"tool {name!r}: {module_name!r} would be imported from {origin}, which agents "
                "can write (install the package, or mark the tool `trusted: true`)"
            )
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
