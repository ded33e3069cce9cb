"""The JSON Schema of the spec format, generated from the pydantic models (never by hand)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_ID = "https://codexflow.dev/schemas/swarm.schema.json"
# Where the published copy lives in the repository; a test fails when it is stale.
SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "swarm.schema.json"


@cache
def json_schema() -> dict[str, Any]:
    from codexflow.spec.models import Spec

    schema = Spec.model_json_schema(by_alias=True, mode="validation")
    _close_pattern_maps(schema)
    _spell_out_unions(schema)
    # Top-level `x-…` keys are ignored (a place for YAML anchors), everything else is closed.
    schema["patternProperties"] = {
        "^x-": {"description": "Ignored: a place for YAML anchors to reuse."}
    }
    schema["additionalProperties"] = False
    budget = schema["$defs"]["BudgetSpec"]
    # BudgetSpec's "at least one limit" rule, which pydantic enforces in a validator.
    budget["anyOf"] = [{"required": ["max_usd"]}, {"required": ["max_tokens"]}]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def _close_pattern_maps(node: Any) -> None:
    """pydantic checks dict keys by pattern; in JSON Schema a non-matching key must be refused too."""
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _close_pattern_maps(value)
    elif isinstance(node, list):
        for value in node:
            _close_pattern_maps(value)


def _spell_out_unions(node: Any) -> None:
    """Editors (yaml-language-server) ignore `discriminator`: with a bare `oneOf` they offer
    some `kind` values and name the wrong member's keys. Say it in plain JSON Schema instead:
    `kind` is one of every value, and each value selects its member (if/then)."""
    if isinstance(node, dict):
        discriminator = node.get("discriminator")
        if isinstance(discriminator, dict) and "oneOf" in node:
            field = discriminator["propertyName"]
            mapping: dict[str, str] = discriminator["mapping"]
            node.pop("discriminator")
            node.pop("oneOf")
            node["type"] = "object"
            node["required"] = [field]
            node["properties"] = {
                field: {
                    "enum": sorted(mapping),
                    "description": f"One of: {', '.join(sorted(mapping))}.",
                }
            }
            node["allOf"] = [
                {
                    "if": {"properties": {field: {"const": value}}, "required": [field]},
                    "then": {"$ref": ref},
                }
                for value, ref in sorted(mapping.items())
            ]
        for value in node.values():
            _spell_out_unions(value)
    elif isinstance(node, list):
        for value in node:
            _spell_out_unions(value)


def render_schema() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def write_schema(path: Path = SCHEMA_FILE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_schema(), encoding="utf-8")
    return path


if __name__ == "__main__":  # python -m codexflow.spec.schema  (regenerates schemas/)
    print(write_schema())
