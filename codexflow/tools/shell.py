"""`kind: shell` spec tools: an argv template filled with typed, validated arguments, run sandboxed."""

from __future__ import annotations

import math
import os
import re
import shlex
from typing import Any

from codexflow.errors import ToolError
from codexflow.spec.models import ShellToolSpec, ToolArgumentSpec
from codexflow.tools.context import ToolContext
from codexflow.tools.registry import Tool
from codexflow.tools.sandbox import Limits, run_sandboxed

_PLACEHOLDER = re.compile(r"^\{\{\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}$")
_LOOSE_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}")
_JSON_TYPES = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}


def argv_template(spec: ShellToolSpec) -> list[str]:
    """The command as argv words; a `{{ name }}` must be a whole word (checked here)."""
    if isinstance(spec.command, str):
        # `{{ name }}` holds spaces; tighten it first so shlex keeps it as one word.
        words = shlex.split(_LOOSE_PLACEHOLDER.sub(r"{{\1}}", spec.command))
    else:
        words = list(spec.command)
    if not words:
        raise ToolError("the shell tool's command is empty")
    for word in words:
        match = _PLACEHOLDER.match(word)
        if match is None and "{{" in word:
            raise ToolError(
                f"placeholder in {word!r} must be a whole argv word, like `{{{{ name }}}}`"
            )
        if match is not None and match.group(1) not in spec.args:
            raise ToolError(f"placeholder {{{{ {match.group(1)} }}}} has no entry under `args`")
    return words


def parameters_schema(spec: ShellToolSpec) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required = []
    for name, arg in spec.args.items():
        prop: dict[str, Any] = {"type": _JSON_TYPES[arg.type]}
        if arg.description:
            prop["description"] = arg.description
        if arg.enum is not None:
            prop["enum"] = list(arg.enum)
        if arg.pattern is not None:
            prop["pattern"] = f"^(?:{arg.pattern})$"
        if arg.default is not None:
            prop["default"] = arg.default
        else:
            required.append(name)
        properties[name] = prop
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _check_value(name: str, arg: ToolArgumentSpec, value: Any) -> str:
    """One argument as the single argv word it becomes, or a ToolError the model can read."""
    kind = arg.type
    ok = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
    }[kind]
    if not ok:
        raise ToolError(f"argument {name!r} must be a {kind}, got {type(value).__name__}")
    if kind == "number" and not math.isfinite(value):
        raise ToolError(f"argument {name!r} must be a finite number, got {value!r}")
    if arg.enum is not None and value not in arg.enum:
        raise ToolError(f"argument {name!r} must be one of {arg.enum!r}")
    if kind == "boolean":
        return "true" if value else "false"
    word = str(value)
    if "\x00" in word:
        raise ToolError(f"argument {name!r} contains a NUL byte")
    if arg.pattern is not None and re.fullmatch(arg.pattern, word) is None:
        raise ToolError(f"argument {name!r} must match the pattern {arg.pattern!r}")
    # A value starting with "-" (a string, or a negative number) would be read as an option by
    # the command, unless the spec lists or patterns the values it accepts.
    if word.startswith("-") and arg.enum is None and arg.pattern is None:
        raise ToolError(
            f"argument {name!r} may not start with '-' (it would be read as an option; "
            "a spec may allow such values with `enum` or `pattern`)"
        )
    return word


def fill_argv(spec: ShellToolSpec, template: list[str], arguments: dict[str, Any]) -> list[str]:
    unknown = set(arguments) - set(spec.args)
    if unknown:
        raise ToolError(
            f"unknown argument(s): {', '.join(sorted(unknown))}; expected: {', '.join(spec.args) or 'none'}"
        )
    values: dict[str, str] = {}
    for name, arg in spec.args.items():
        if name in arguments:
            values[name] = _check_value(name, arg, arguments[name])
        elif arg.default is not None:
            values[name] = _check_value(name, arg, arg.default)
        else:
            raise ToolError(f"missing required argument {name!r}")
    argv = []
    for word in template:
        match = _PLACEHOLDER.match(word)
        argv.append(values[match.group(1)] if match else word)
    return argv


def is_dangerous(argv: list[str]) -> bool:
    """Operations that reach outside the run (a git push) need a person's approval."""
    if not argv:
        return False
    program = os.path.basename(argv[0])
    words = [w for w in argv[1:] if not w.startswith("-")]
    if program == "git":
        return any(w in ("push", "send-email", "request-pull") for w in words)
    return program in ("gh", "hub") and "push" in words


def shell_tool(name: str, spec: ShellToolSpec) -> Tool:
    """A Tool for one `kind: shell` entry of the spec."""
    template = argv_template(spec)

    def run(ctx: ToolContext, arguments: dict[str, Any]) -> str:
        argv = fill_argv(spec, template, arguments)
        limits = Limits(timeout=spec.timeout, cpu_seconds=max(1, int(spec.timeout) + 5))
        result = run_sandboxed(
            argv,
            ctx.workspace,
            limits=limits,
            allow_unsafe=ctx.allow_unsafe,
            protected=ctx.protected,
        )
        text = result.render()
        if result.timed_out or result.exit_code != 0:
            raise ToolError(text)
        return text

    def dangerous(arguments: dict[str, Any]) -> bool:
        try:
            return is_dangerous(fill_argv(spec, template, arguments))
        except ToolError:
            return False  # invalid calls fail anyway, before anything runs

    shown = " ".join(template)
    return Tool(
        name=name,
        description=spec.description or f"Runs `{shown}` in a sandbox.",
        parameters=parameters_schema(spec),
        run=run,
        approval=spec.approval or is_dangerous(template),
        dangerous=dangerous,
    )
