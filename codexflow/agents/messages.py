"""The opening messages of one step: the system prompt, and a user message with what it may see."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from codexflow.agents.step_io import StepCall
from codexflow.compiler.plan import Step

# A fan-out step is one plan node ("refactor[*]") but runs once per item; the runtime may hand
# its outputs over as one list under that id or one entry per item ("refactor[0]", ...).
_FAN_OUT_ITEM = re.compile(r"^(?P<base>.*)\[(?P<index>\d+)\]$")


def visible_context(step: Step, context: Mapping[str, Any]) -> dict[str, Any]:
    """The outputs of `context` that `step` may see, in the order of `step.context`.

    The runtime should only pass visible outputs; filtering again here means a runtime bug
    cannot leak a peer's answer into a prompt (topologies depend on who sees what).
    """
    allowed = set(step.context)
    visible: dict[str, Any] = {}
    for step_id in step.context:
        if step_id in context:
            visible[step_id] = context[step_id]
        if step_id.endswith("[*]"):
            items = []
            for key in context:
                match = _FAN_OUT_ITEM.match(key)
                if match and f"{match['base']}[*]" == step_id and key not in allowed:
                    items.append((int(match["index"]), key))
            for _, key in sorted(items):
                visible[key] = context[key]
    return visible


def render_value(value: Any) -> str:
    """Text as it is; anything else as fenced JSON (models read JSON better than Python reprs)."""
    if isinstance(value, str):
        return value
    return "```json\n" + json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n```"


def schema_instruction(schema: Mapping[str, Any]) -> str:
    """How to answer a structured-output step, stated in words for models without JSON mode."""
    return (
        "Answer with a single JSON value that validates against this JSON Schema, and "
        "nothing else: no prose before or after it.\n"
        "```json\n" + json.dumps(schema, indent=2, ensure_ascii=False) + "\n```"
    )


def user_message(call: StepCall, *, labels: Mapping[str, str] | None = None) -> str:
    """The user message of a step: visible context first (long material reads best before the
    question), then the task, the fan-out item, the topology's instruction and the answer format.

    `labels` maps step ids to the agent that ran them, so a merge can tell its workers apart.
    """
    step = call.step
    sections: list[str] = []
    visible = visible_context(step, call.context)
    if visible:
        parts = ["# Context: outputs of earlier steps"]
        for step_id, output in visible.items():
            agent = (labels or {}).get(step_id) or (labels or {}).get(_plan_id(step_id))
            who = f" (agent `{agent}`)" if agent else ""
            parts.append(f"## Step `{step_id}`{who}\n\n{render_value(output)}")
        sections.append("\n\n".join(parts))
    sections.append(f"# Task\n\n{call.prompt.strip()}")
    if call.item is not None or call.index is not None:
        where = f" (item {call.index})" if call.index is not None else ""
        sections.append(f"# Your item{where}\n\n{render_value(call.item)}")
    if step.instruction.strip():
        sections.append(f"# What this step must do\n\n{step.instruction.strip()}")
    if step.output_schema is not None:
        sections.append(f"# Answer format\n\n{schema_instruction(step.output_schema)}")
    return "\n\n".join(sections)


def build_messages(
    system: str, call: StepCall, *, labels: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The conversation a step opens with: its system prompt and its user message."""
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": user_message(call, labels=labels)},
    ]


def _plan_id(step_id: str) -> str:
    # "refactor[3]" was run by the agent of the plan node "refactor[*]".
    match = _FAN_OUT_ITEM.match(step_id)
    return f"{match['base']}[*]" if match else step_id
