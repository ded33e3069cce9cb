"""The JSON Schema of `codexflow plan --format json`, generated from the Plan types, so that
tools reading plans can rely on its shape (`schemas/plan.schema.json`; a test keeps it fresh)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

# Bumped when a field changes meaning or goes away; new fields keep the version.
PLAN_FORMAT_VERSION = 1
PLAN_SCHEMA_ID = "https://codexflow.dev/schemas/plan.schema.json"
PLAN_SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "plan.schema.json"

_RANGE = {
    "type": "object",
    "properties": {"low": {"type": "number"}, "high": {"type": "number"}},
    "required": ["low", "high"],
}
_MODEL_ESTIMATE = {
    "type": "object",
    "properties": {
        "model": {"type": "string"},
        "calls": _RANGE,
        "usd": _RANGE,
        "priced": {"type": "boolean", "description": "False: the model's price is unknown."},
        "per_item_calls": _RANGE,
        "per_item_usd": _RANGE,
    },
    "required": ["model", "calls", "usd", "priced"],
}
_ESTIMATE = {
    "type": "object",
    "description": "A rough cost range before any call; cached steps are left out.",
    "properties": {
        "models": {"type": "object", "additionalProperties": _MODEL_ESTIMATE},
        "dynamic_steps": {"type": "array", "items": {"type": "string"}},
        "calls": _RANGE,
        "usd": _RANGE,
        "cost_known": {"type": "boolean"},
        "unpriced_models": {"type": "array", "items": {"type": "string"}},
        "max_usd": {"type": ["number", "null"]},
        "max_usd_enforceable": {"type": "boolean"},
    },
    "required": ["models", "dynamic_steps", "calls", "usd", "cost_known", "unpriced_models"],
}


@cache
def plan_schema() -> dict[str, Any]:
    from pydantic import TypeAdapter

    from codexflow.compiler.plan import Plan

    schema = TypeAdapter(Plan).json_schema(mode="serialization")
    step = schema["$defs"]["Step"]
    step["properties"]["fan_out"] = {"type": "boolean", "description": "Has `for_each`."}
    step["properties"]["cached"] = {
        "type": "boolean",
        "description": "Its result is in the state dir's cache (present when a cache exists).",
    }
    step["required"] = [*step.get("required", []), "fan_out"]
    schema["properties"] = {
        "version": {
            "const": PLAN_FORMAT_VERSION,
            "description": "The plan format's version; bumped only on incompatible changes.",
        },
        **schema["properties"],
        "estimate": _ESTIMATE,
    }
    schema["required"] = ["version", *schema.get("required", [])]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": PLAN_SCHEMA_ID,
        **schema,
    }


def render_plan_schema() -> str:
    return json.dumps(plan_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # python -m codexflow.compiler.plan_schema  (regenerates schemas/)
    PLAN_SCHEMA_FILE.write_text(render_plan_schema(), encoding="utf-8")
    print(PLAN_SCHEMA_FILE)
