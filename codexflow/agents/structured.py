"""Structured output: the response format to ask for, and parsing + validating the final answer."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from jsonschema import SchemaError
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for

# Models that ignore JSON mode often wrap the answer in a fence, sometimes after a sentence.
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n(?P<body>.*?)\n?[ \t]*```", re.DOTALL)
_SCHEMA_NAME = re.compile(r"[^A-Za-z0-9_-]+")


class InvalidAnswer(ValueError):
    """The answer is not JSON, or does not validate; `message` is what the model is told."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def response_format(step_id: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAI-style `json_schema` response format; providers drop it for models without it.

    `strict` stays off: strict mode rejects common schemas (optional properties, no
    `additionalProperties: false`), and jsonschema validates the answer here anyway.
    """
    name = _SCHEMA_NAME.sub("_", step_id).strip("_")[:64] or "output"
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": dict(schema), "strict": False},
    }


def check_schema(schema: Mapping[str, Any]) -> str | None:
    """The problem with the schema itself, or None when it is a valid JSON Schema."""
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as error:
        return str(error.message)
    return None


def parse_answer(text: str) -> Any:
    """The JSON value of an answer: the whole text, else a ```json fence, else the first
    object/array in it. Raises InvalidAnswer when there is none."""
    stripped = text.strip()
    if not stripped:
        raise InvalidAnswer("the answer is empty; a JSON value was expected")
    try:
        return json.loads(stripped)
    except json.JSONDecodeError as error:
        first_error = error
    fence = _FENCE.search(stripped)
    if fence:
        try:
            return json.loads(fence["body"])
        except json.JSONDecodeError as error:
            raise InvalidAnswer(f"the ```json block is not valid JSON: {error}") from None
    starts = [i for i in (stripped.find("{"), stripped.find("[")) if i >= 0]
    if starts:
        try:
            value, _ = json.JSONDecoder().raw_decode(stripped, min(starts))
            return value
        except json.JSONDecodeError:
            pass
    raise InvalidAnswer(f"the answer is not valid JSON: {first_error}")


def validation_error(value: Any, schema: Mapping[str, Any]) -> str | None:
    """The most relevant way `value` fails `schema`, with where it fails; None when it validates."""
    validator = validator_for(schema)(schema)
    error = best_match(validator.iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path)
    return f"at {where or '(root)'}: {error.message}"


def parse_and_validate(text: str, schema: Mapping[str, Any]) -> Any:
    """The answer's JSON value if it validates against `schema`; InvalidAnswer otherwise."""
    value = parse_answer(text)
    problem = validation_error(value, schema)
    if problem is not None:
        raise InvalidAnswer(f"the JSON does not match the schema {problem}")
    return value
