"""The JSON Schema gives editors every choice: no `discriminator` (which yaml-language-server
ignores), every `kind` enumerated, a ring's `order` without repeats."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from codexflow.spec.models import RingTopology
from codexflow.spec.schema import json_schema

BASE: dict[str, Any] = {
    "apiVersion": "codexflow/v1",
    "name": "demo",
    "agents": {"a": {"role": "coder"}, "b": {"role": "reviewer"}},
    "tasks": {"t": {"agent": "a", "prompt": "Do it."}},
}


def errors(document: dict[str, Any]) -> list[str]:
    return [e.message for e in Draft202012Validator(json_schema()).iter_errors(document)]


def all_errors(document: dict[str, Any]) -> list[str]:
    """Every message, nested ones included (as an editor lists them)."""
    found = []
    stack = list(Draft202012Validator(json_schema()).iter_errors(document))
    while stack:
        error = stack.pop()
        found.append(error.message)
        stack.extend(error.context or [])
    return found


def test_no_discriminator_is_left() -> None:
    assert '"discriminator"' not in json.dumps(json_schema())


def test_a_wrong_tool_kind_is_told_every_kind() -> None:
    document = BASE | {"tools": {"x": {"kind": "shel", "command": "ls"}}}
    assert "'shel' is not one of ['mcp', 'python', 'shell', 'web']" in all_errors(document)


def test_a_wrong_topology_kind_is_told_every_kind_ring_included() -> None:
    document = BASE | {"topology": {"kind": "rign", "order": ["a", "b"]}}
    assert "'rign' is not one of ['hierarchical', 'mesh', 'ring', 'star']" in all_errors(document)


@pytest.mark.parametrize(
    "topology",
    [
        {"kind": "ring", "order": ["a", "b"]},
        {"kind": "hierarchical", "coordinator": "a"},
        {"kind": "mesh"},
    ],
)
def test_each_kind_still_selects_its_own_keys(topology: dict[str, Any]) -> None:
    assert errors(BASE | {"topology": topology}) == []
    assert errors(BASE | {"topology": topology | {"bogus": 1}}) != []


def test_a_ring_lists_each_agent_once() -> None:
    document = BASE | {"topology": {"kind": "ring", "order": ["a", "b", "a"]}}
    assert any("non-unique" in message for message in all_errors(document))
    with pytest.raises(ValidationError):
        RingTopology.model_validate({"kind": "ring", "order": ["a", "b", "a"]})
