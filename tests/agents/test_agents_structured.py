"""Parsing a model's structured answer and saying precisely why it is invalid."""

from __future__ import annotations

import pytest

from codexflow.agents.structured import (
    InvalidAnswer,
    parse_and_validate,
    parse_answer,
    response_format,
    validation_error,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": 1}', {"a": 1}),
        ("  [1, 2]\n", [1, 2]),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ('Here it is:\n```\n{"a": 1}\n```\nHope that helps.', {"a": 1}),
        ('The result: {"a": [1, 2]} as requested.', {"a": [1, 2]}),
        ('"just a string"', "just a string"),
    ],
)
def test_answers_parse_with_or_without_a_fence(text: str, value: object) -> None:
    assert parse_answer(text) == value


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "the answer is empty"),
        ("no json here", "not valid JSON"),
        ('```json\n{"a": }\n```', "```json block is not valid JSON"),
    ],
)
def test_unparseable_answers_say_why(text: str, problem: str) -> None:
    with pytest.raises(InvalidAnswer, match=problem):
        parse_answer(text)


def test_validation_errors_name_the_place() -> None:
    schema = {
        "type": "object",
        "properties": {"units": {"type": "array", "items": {"type": "string"}}},
    }
    assert validation_error({"units": ["a", 3]}, schema) == "at units/1: 3 is not of type 'string'"
    assert validation_error([], schema) == "at (root): [] is not of type 'object'"
    assert validation_error({"units": []}, schema) is None
    with pytest.raises(InvalidAnswer, match="does not match the schema at units/1"):
        parse_and_validate('{"units": ["a", 3]}', schema)


def test_the_response_format_name_is_what_openai_accepts() -> None:
    fmt = response_format("docs.ring[2].writer", {"type": "object"})
    assert fmt["json_schema"]["name"] == "docs_ring_2_writer"  # ^[A-Za-z0-9_-]{1,64}$
    assert fmt["json_schema"]["strict"] is False
