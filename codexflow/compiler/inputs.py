"""Resolve a run's inputs: spec defaults, then `--set name=value` overrides parsed to their type."""

from __future__ import annotations

import json
from typing import Any

from codexflow.errors import Issue, SpecError
from codexflow.spec.models import Spec, is_json_type


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """`["a=1", "b=x=y"]` -> {"a": "1", "b": "x=y"}."""
    out: dict[str, str] = {}
    problems = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            problems.append(Issue("--set", 0, 0, "", f"`{pair}` is not name=value"))
            continue
        out[name.strip()] = value
    if problems:
        raise SpecError(problems)
    return out


def _convert(kind: str, text: str) -> Any:
    if kind == "string":
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"expected {kind} (JSON), got {text!r}") from None
    if not is_json_type(value, kind):
        raise ValueError(f"expected {kind}, got {text!r}")
    return value


def resolve_inputs(spec: Spec, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every input's value for one run. String overrides (from the CLI) are parsed to the type."""
    overrides = dict(overrides or {})
    problems: list[Issue] = []
    values: dict[str, Any] = {}
    for name in overrides:
        if name not in spec.inputs:
            from codexflow.spec.diagnostics import choices_hint

            hint = (
                choices_hint(name, set(spec.inputs), "inputs") or "the spec declares no such input"
            )
            problems.append(Issue("--set", 0, 0, name, f"unknown input `{name}`", hint))
    for name, declared in spec.inputs.items():
        if name in overrides:
            raw = overrides[name]
            try:
                value = _convert(declared.type, raw) if isinstance(raw, str) else raw
            except ValueError as exc:
                problems.append(Issue("--set", 0, 0, name, str(exc)))
                continue
        elif declared.default is not None:
            value = declared.default
        else:
            problems.append(
                Issue(
                    "--set",
                    0,
                    0,
                    name,
                    f"the input `{name}` has no default",
                    f"pass --set {name}=...",
                )
            )
            continue
        if declared.enum is not None and value not in declared.enum:
            problems.append(Issue("--set", 0, 0, name, f"{value!r} is not one of {declared.enum}"))
            continue
        values[name] = value
    if problems:
        raise SpecError(problems)
    return values
