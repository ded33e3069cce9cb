"""Turn pydantic's validation errors into located, readable issues with "did you mean"."""

from __future__ import annotations

import difflib
import re
from functools import cache
from typing import Any

from pydantic import ValidationError

from codexflow.errors import Issue
from codexflow.spec.yaml_source import Path, Source

_YAML11_BOOLS = {
    "yes",
    "no",
    "on",
    "off",
    "y",
    "n",
    "true",
    "false",
    "True",
    "False",
    "TRUE",
    "FALSE",
}


def suggest(word: str, choices: list[str] | tuple[str, ...] | set[str]) -> str:
    """`; did you mean 'x'?` or an empty string."""
    matches = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else ""


def choices_hint(word: str, choices: list[str] | tuple[str, ...] | set[str], noun: str) -> str:
    """A hint naming the closest choice, or all of them when few."""
    close = suggest(word, choices)
    listed = ", ".join(sorted(choices))
    if close:
        return close
    return f"valid {noun}: {listed}" if choices and len(listed) < 160 else ""


def issues_from_validation(error: ValidationError, source: Source) -> list[Issue]:
    from codexflow.spec.models import UNIQUE_ITEMS

    issues = []
    for detail in error.errors(include_url=False):
        if detail["type"] == UNIQUE_ITEMS:
            continue  # the cross checks name the repeated item at its own position
        issues.append(_one(dict(detail), source))
    return _dedupe(issues)


_EXPECTED = re.compile(r"^expected (?P<what>.+?), got (?P<got>.+)$")


def _merge_alternatives(issues: list[Issue]) -> list[Issue]:
    """One message for a value that matches no member of a union (`str | list`): pydantic
    reports each member on its own, which reads as contradictory advice."""
    out: list[Issue] = []
    merged: dict[tuple[int, int, str, str], int] = {}
    for issue in issues:
        match = _EXPECTED.match(issue.message)
        if match is None:
            out.append(issue)
            continue
        key = (issue.line, issue.col, issue.loc, match.group("got"))
        if key not in merged:
            merged[key] = len(out)
            out.append(issue)
            continue
        first = out[merged[key]]
        what = _EXPECTED.match(first.message)
        assert what is not None
        out[merged[key]] = Issue(
            first.path,
            first.line,
            first.col,
            first.loc,
            f"expected {what.group('what')} or {match.group('what')}, got {match.group('got')}",
        )
    return out


def _dedupe(issues: list[Issue]) -> list[Issue]:
    issues = _merge_alternatives(issues)
    seen: set[tuple[int, int, str, str]] = set()
    out = []
    for issue in issues:
        key = (issue.line, issue.col, issue.loc, issue.message)
        if key not in seen:
            seen.add(key)
            out.append(issue)
    return out


def data_path(loc: tuple[Any, ...], data: Any) -> Path:
    """Map a pydantic loc onto the data: drop union tags and validator names that are not keys."""
    path: list[str | int] = []
    current = data
    for part in loc:
        if isinstance(current, dict) and isinstance(part, str) and part in current:
            path.append(part)
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            path.append(part)
            current = current[part]
        elif isinstance(current, dict) and isinstance(part, str) and not _is_tag(part):
            path.append(part)  # a missing or unknown key: keep it so the message names it
            current = None
        # else: a discriminator value or a union member name that pydantic inserted
    return tuple(path)


@cache
def _union_tags() -> frozenset[str]:
    """The `kind` values of the spec's tagged unions: pydantic puts them into error locations."""
    from typing import get_args

    from codexflow.spec.models import ToolSpec, TopologySpec

    members = [m for union in (ToolSpec, TopologySpec) for m in get_args(get_args(union)[0])]
    return frozenset(get_args(m.model_fields["kind"].annotation)[0] for m in members)


def _is_tag(part: str) -> bool:
    # Besides union tags, pydantic names the member type it tried (`list[str]`, `function-...`).
    prefixes = ("function-", "list[", "dict[", "str", "int", "float", "bool", "tuple[")
    return part in _union_tags() or part.startswith(prefixes)


def dotted(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _value_at(data: Any, path: Path) -> Any:
    current = data
    for part in path:
        try:
            current = current[part]
        except (KeyError, IndexError, TypeError):
            return None
    return current


def _one(detail: dict[str, Any], source: Source) -> Issue:
    kind = detail["type"]
    path = data_path(detail["loc"], source.data)
    value = _value_at(source.data, path)
    message = detail["msg"]
    hint = ""
    at_key = False
    if kind == "extra_forbidden":
        key = str(path[-1]) if path else "?"
        allowed = allowed_keys(path[:-1], source.data)
        message = f"unknown key `{key}`"
        hint = choices_hint(key, allowed, "keys") if allowed else ""
        at_key = True
    elif kind == "missing":
        key = str(path[-1]) if path else "?"
        message = f"missing required key `{key}`"
        path_for_position = path[:-1]
        pos = source.position(path_for_position)
        return Issue(source.path, pos.line, pos.col, dotted(path), message, hint)
    elif kind in (
        "bool_type",
        "int_type",
        "float_type",
        "string_type",
        "dict_type",
        "list_type",
        "model_type",
    ):
        message = f"expected {_expected(kind)}, got {_describe(value)}"
        if kind == "bool_type" and isinstance(value, str) and value in _YAML11_BOOLS:
            hint = "write true or false: in YAML 1.2 `yes`/`no`/`on`/`off` are strings"
        elif kind in ("int_type", "float_type") and isinstance(value, str) and _numeric(value):
            hint = "remove the quotes: a quoted number is a string"
        elif kind == "string_type" and isinstance(value, bool | int | float):
            hint = (
                f'quote it: "{value}"'
                if not isinstance(value, bool)
                else "quote it if you meant the text"
            )
    elif kind == "literal_error":
        expected = detail.get("ctx", {}).get("expected", "")
        choices = [
            part.strip().strip("'")
            for part in expected.replace(" or ", ", ").split(",")
            if part.strip()
        ]
        message = f"{_describe(value)} is not one of {expected}"
        if isinstance(value, str):
            hint = suggest(value, choices)
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        ctx = detail.get("ctx", {})
        tags = [
            tag.strip().strip("'")
            for tag in str(ctx.get("expected_tags", "")).split(",")
            if tag.strip()
        ]
        if kind == "union_tag_not_found":
            message = f"missing `kind` (one of {', '.join(tags)})"
        else:
            found = ctx.get("tag", "")
            message = f"unknown kind `{found}` (expected one of {', '.join(tags)})"
            hint = suggest(str(found), tags)
            path = (*path, "kind")
    elif kind == "string_pattern_mismatch":
        pattern = detail.get("ctx", {}).get("pattern", "")
        message = f"{_describe(value)} does not match {pattern}"
        if pattern.startswith("^[a-z0-9]"):
            hint = "use lowercase letters, digits and dashes"
    elif kind in _BOUNDS:
        limit = next(iter(detail.get("ctx", {}).values()), "")
        message = f"must be {_BOUNDS[kind]} {limit}, got {_describe(value)}"
    elif kind in ("too_short", "too_long"):
        ctx = detail.get("ctx", {})
        if kind == "too_short":
            message = (
                f"needs at least {ctx.get('min_length')} item(s), got {ctx.get('actual_length')}"
            )
        else:
            message = (
                f"allows at most {ctx.get('max_length')} item(s), got {ctx.get('actual_length')}"
            )
        if isinstance(value, str):
            message = message.replace("item(s)", "character(s)")
    elif kind == "value_error":
        message = str(detail.get("ctx", {}).get("error", message))
    pos = source.position(path, key=at_key)
    return Issue(source.path, pos.line, pos.col, dotted(path), message, hint)


_BOUNDS = {
    "greater_than": "greater than",
    "greater_than_equal": "at least",
    "less_than": "less than",
    "less_than_equal": "at most",
}


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _expected(kind: str) -> str:
    return {
        "bool_type": "true or false",
        "int_type": "an integer",
        "float_type": "a number",
        "string_type": "a string",
        "dict_type": "a mapping",
        "model_type": "a mapping",
        "list_type": "a list",
    }[kind]


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if value is None:
        return "nothing (null)"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string '{shown}'"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


@cache
def _schema() -> dict[str, Any]:
    from codexflow.spec.schema import json_schema

    return json_schema()


def allowed_keys(path: Path, data: Any) -> list[str]:
    """The keys the schema allows in the mapping at `path` (following $ref, unions by `kind`)."""
    schema = _schema()
    node: dict[str, Any] = schema
    current = data
    for part in path:
        node = _resolve(node, current, schema)
        if "properties" in node and isinstance(part, str) and part in node["properties"]:
            node = node["properties"][part]
        elif "patternProperties" in node:
            node = next(iter(node["patternProperties"].values()))
        elif "additionalProperties" in node and isinstance(node["additionalProperties"], dict):
            node = node["additionalProperties"]
        elif "items" in node:
            node = node["items"]
        else:
            return []
        current = current.get(part) if isinstance(current, dict) else None
    node = _resolve(node, current, schema)
    return sorted(node.get("properties", {}))


def _resolve(node: dict[str, Any], data: Any, root: dict[str, Any]) -> dict[str, Any]:
    for _ in range(8):  # refs and unions nest only a few levels
        if "$ref" in node:
            node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        elif "allOf" in node and all("if" in branch for branch in node["allOf"]):
            # A tagged union spelled out for editors (schema.py): `kind` picks the member.
            kind = data.get("kind") if isinstance(data, dict) else None
            chosen = [
                branch["then"]
                for branch in node["allOf"]
                if branch["if"]["properties"].get("kind", {}).get("const") == kind
            ]
            if not chosen:
                return {}
            node = chosen[0]
        elif "oneOf" in node or "anyOf" in node:
            options = node.get("oneOf") or node.get("anyOf") or []
            kind = data.get("kind") if isinstance(data, dict) else None
            mapping = node.get("discriminator", {}).get("mapping", {})
            if kind in mapping:
                node = {"$ref": mapping[kind]}
                continue
            objects = [option for option in options if option.get("type") != "null"]
            if len(objects) != 1:
                return {}
            node = objects[0]
        else:
            return node
    return node
