"""Jinja2 templates of the spec: one sandboxed environment to check references and to render."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.exceptions import TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

# The names a template may use; everything else is an undefined variable.
ROOTS = ("inputs", "tasks", "item", "memory")

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)


class TemplateProblem(Exception):
    """A template cannot be parsed or rendered. `line` is 1-based within the template."""

    def __init__(self, message: str, line: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def _finalize(value: Any) -> Any:
    # Structured outputs read better as JSON than as Python reprs in a prompt.
    if isinstance(value, dict | list):
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)
    return value


@cache
def environment() -> ImmutableSandboxedEnvironment:
    """The one environment: sandboxed (no attribute tricks), strict about undefined names."""
    return ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, finalize=_finalize
    )


@dataclass(frozen=True, slots=True)
class Reference:
    """A use of a template variable: `tasks.plan.output.units` is root `tasks`, path (plan, output, units)."""

    root: str
    path: tuple[str, ...]
    line: int


def parse(text: str) -> nodes.Template:
    try:
        return environment().parse(text)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"template syntax error: {exc.message}", exc.lineno or 1) from None


def references(text: str) -> tuple[list[Reference], set[str]]:
    """Every variable the template reads, and the names it defines itself (loop variables, set)."""
    tree = parse(text)
    defined: set[str] = set()
    for name in tree.find_all(nodes.Name):
        if name.ctx in ("store", "param"):
            defined.add(name.name)
    found: list[Reference] = []
    for node in _walk(tree):
        chain = _attribute_chain(node)
        if chain is not None:
            found.append(Reference(chain[0], tuple(chain[1:]), node.lineno))
    return found, defined


def _walk(node: nodes.Node) -> list[nodes.Node]:
    """Outermost attribute chains and bare names, each once (`a.b.c` yields only the Getattr for c)."""
    out: list[nodes.Node] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if (
            isinstance(current, nodes.Getattr | nodes.Getitem)
            and _attribute_chain(current) is not None
        ):
            out.append(current)
            continue
        if isinstance(current, nodes.Name) and current.ctx == "load":
            out.append(current)
            continue
        stack.extend(current.iter_child_nodes())
    return out


def _attribute_chain(node: nodes.Node) -> list[str] | None:
    """`tasks.plan.output` and `tasks['plan'].output` as ['tasks', 'plan', 'output']."""
    parts: list[str] = []
    current = node
    while True:
        if isinstance(current, nodes.Getattr):
            parts.append(current.attr)
            current = current.node
        elif isinstance(current, nodes.Getitem):
            if isinstance(current.arg, nodes.Const) and isinstance(current.arg.value, str | int):
                parts.append(str(current.arg.value))
                current = current.node
            else:
                # A computed key (`tasks[x]`): keep the part before it.
                parts.clear()
                current = current.node
        elif isinstance(current, nodes.Name):
            if current.ctx != "load":
                return None
            parts.append(current.name)
            return list(reversed(parts))
        else:
            return None


def single_expression(text: str) -> str | None:
    """The expression of a template that is exactly one `{{ … }}`, else None."""
    match = _SINGLE_EXPRESSION.match(text)
    if match is None or "{{" in match.group("expr") or "}}" in match.group("expr"):
        return None
    return match.group("expr").strip()


_PLACEHOLDER = re.compile(r"\{\{.*?\}\}", re.DOTALL)


def split_command(command: str) -> list[str]:
    """Split a command string like a shell would, keeping each `{{ arg }}` inside its word.

    Nothing here runs a shell: the words become an argv list.
    """
    import shlex

    found: list[str] = []

    def protect(match: re.Match[str]) -> str:
        found.append(match.group(0))
        return f"\x00{len(found) - 1}\x00"

    words = shlex.split(_PLACEHOLDER.sub(protect, command))
    return [re.sub(r"\x00(\d+)\x00", lambda m: found[int(m.group(1))], word) for word in words]


def render(text: str, variables: dict[str, Any]) -> str:
    """Render a prompt. Undefined names and sandbox violations become TemplateProblem."""
    try:
        return environment().from_string(text).render(variables)
    except (UndefinedError, SecurityError, TemplateError) as exc:
        raise TemplateProblem(f"cannot render template: {exc}") from None


def evaluate(text: str, variables: dict[str, Any]) -> Any:
    """Evaluate a one-expression template (`{{ tasks.plan.output.units }}`) to its native value."""
    expression = single_expression(text)
    if expression is None:
        raise TemplateProblem("expected exactly one `{{ expression }}`")
    try:
        return environment().compile_expression(expression, undefined_to_none=False)(**variables)
    except (UndefinedError, SecurityError, TemplateError) as exc:
        raise TemplateProblem(f"cannot evaluate `{expression}`: {exc}") from None
