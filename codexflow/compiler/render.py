"""Pictures and tables of a Plan: text (rich), Mermaid, Graphviz DOT and JSON."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from codexflow.compiler.estimate import Estimate
from codexflow.compiler.plan import Plan, Step

KIND_LABELS = {"agent": "agent", "decompose": "decompose", "merge": "merge", "approval": "approval"}


def kind_label(step: Step) -> str:
    return "fan-out" if step.for_each is not None else KIND_LABELS[step.kind]


def _money(value: float) -> str:
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def _span(low: float, high: float, money: bool = False) -> str:
    show = _money if money else (lambda v: f"{v:,.0f}")
    return show(low) if low == high else f"{show(low)}–{show(high)}"


def estimate_lines(estimate: Estimate) -> list[str]:
    """The estimate as plain lines, one per model, then the total."""
    lines = []
    for model in sorted(estimate.models.values(), key=lambda m: m.model):
        text = f"{model.model}: {_span(model.calls.low, model.calls.high)} calls"
        if model.priced:
            text += f", {_span(model.usd.low, model.usd.high, money=True)}"
        else:
            text += ", cost unknown (not in litellm's table; declare `providers.<prefix>.price`)"
        if model.per_item_calls.high:
            text += f" + {_span(model.per_item_calls.low, model.per_item_calls.high)} calls"
            if model.priced:
                text += f" / {_span(model.per_item_usd.low, model.per_item_usd.high, money=True)}"
            text += " per fan-out item"
        lines.append(text)
    total = estimate.calls
    usd = estimate.usd
    unpriced = estimate.unpriced
    if unpriced and len(unpriced) == len(estimate.models):
        cost = "cost unknown"
    elif unpriced:
        cost = f"{_span(usd.low, usd.high, money=True)} + the unknown cost of {', '.join(unpriced)}"
    else:
        cost = _span(usd.low, usd.high, money=True)
    line = f"total: {_span(total.low, total.high)} LLM calls, {cost}"
    if estimate.dynamic_steps:
        line += f", plus the items of {', '.join(estimate.dynamic_steps)} (known at run time)"
    lines.append(line)
    if unpriced and estimate.max_usd is not None:
        lines.append(
            f"budget: max_usd {_money(estimate.max_usd)} cannot be enforced for "
            f"{', '.join(unpriced)}: their price is unknown (declare `providers.<prefix>.price`, "
            "or set `budget.max_tokens`)"
        )
    return lines


def render_text(
    plan: Plan, estimate: Estimate | None = None, cached: dict[str, bool] | None = None
) -> Any:
    """A rich renderable: header, one row per step in order, assignments and the estimate."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    inputs = ", ".join(f"{k}={v!r}" for k, v in plan.inputs.items()) or "none"
    models = sorted({step.model for step in plan.steps if step.model})
    one_model = len(models) == 1
    header = Text.assemble(
        ("plan ", "bold"),
        (plan.name, "bold cyan"),
        f": {len(plan.steps)} steps in {len(plan.groups)} parallel groups",
        f"; every step on {models[0]}" if one_model else "",
        f"\ninputs: {inputs}",
    )
    columns = ["group", "step", "kind", "agent", *([] if one_model else ["model"]), "depends on"]
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, no_wrap=column in ("group", "step", "kind", "agent"))
    if cached is not None:
        table.add_column("cached")
    for step in plan.steps:
        row = [
            str(step.group + 1),
            step.id,
            kind_label(step),
            step.agent or "-",
            *([] if one_model else [step.model or "-"]),
            ", ".join(step.depends_on) or "-",
        ]
        if cached is not None:
            row.append(
                "asks" if step.kind == "approval" else ("yes" if cached.get(step.id) else "")
            )
        table.add_row(*row)
    parts: list[Any] = [header, table]
    notes = [
        f"  {step.id}: {step.reason}" for step in plan.steps if step.reason.startswith("auto:")
    ]
    if notes:
        parts.append(Text("agent: auto", style="bold"))
        parts.extend(Text(note) for note in notes)
    if estimate is not None:
        parts.append(Text("estimate (rough, before any call)", style="bold"))
        parts.extend(Text(f"  {line}") for line in estimate_lines(estimate))
    if cached is not None:
        hits = sum(1 for value in cached.values() if value)
        parts.append(
            Text(f"{hits} of {len(plan.steps)} steps cached: they will not run (or cost) again")
        )
    return Group(*parts)


def _node_ids(plan: Plan) -> dict[str, str]:
    return {step.id: f"s{index}" for index, step in enumerate(plan.steps)}


def _quote(text: str) -> str:
    return text.replace('"', "#quot;")


def render_mermaid(plan: Plan) -> str:
    ids = _node_ids(plan)
    lines = ["flowchart TD"]
    for task, steps in _by_task(plan).items():
        nested = len(steps) > 1
        if nested:
            lines.append(f'  subgraph {task}["{_quote(task)}"]')
        for step in steps:
            label = _quote(f"{step.id}<br/>{step.agent or 'approval'}")
            shape = {
                "approval": ("{", "}"),
                "merge": ("([", "])"),
                "decompose": ("[/", "/]"),
            }.get(step.kind, ("[[", "]]") if step.for_each is not None else ("[", "]"))
            lines.append(f'{"    " if nested else "  "}{ids[step.id]}{shape[0]}"{label}"{shape[1]}')
        if nested:
            lines.append("  end")
    for before, after in plan.edges:
        lines.append(f"  {ids[before]} --> {ids[after]}")
    return "\n".join(lines) + "\n"


def render_dot(plan: Plan) -> str:
    ids = _node_ids(plan)
    lines = [
        f'digraph "{plan.name}" {{',
        "  rankdir=TB;",
        '  node [shape=box, fontname="Helvetica"];',
    ]
    for index, (task, steps) in enumerate(_by_task(plan).items()):
        nested = len(steps) > 1
        indent = "    " if nested else "  "
        if nested:
            lines.append(f"  subgraph cluster_{index} {{")
            lines.append(f'    label="{task}";')
        for step in steps:
            shape = {"approval": "diamond", "merge": "ellipse", "decompose": "trapezium"}.get(
                step.kind, "box3d" if step.for_each is not None else "box"
            )
            label = f"{step.id}\\n{step.agent or 'approval'}"
            lines.append(f'{indent}{ids[step.id]} [label="{label}", shape={shape}];')
        if nested:
            lines.append("  }")
    for before, after in plan.edges:
        lines.append(f"  {ids[before]} -> {ids[after]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _by_task(plan: Plan) -> dict[str, list[Step]]:
    grouped: dict[str, list[Step]] = {}
    for step in plan.steps:
        grouped.setdefault(step.task, []).append(step)
    return grouped


def plan_to_dict(
    plan: Plan, estimate: Estimate | None = None, cached: dict[str, bool] | None = None
) -> dict[str, Any]:
    """The machine form of the plan (what `codexflow plan --format json` prints)."""
    from codexflow.compiler.plan_schema import PLAN_FORMAT_VERSION

    data = {"version": PLAN_FORMAT_VERSION, **dataclasses.asdict(plan)}
    for step in data["steps"]:
        step["fan_out"] = step["for_each"] is not None
        if cached is not None:
            step["cached"] = bool(cached.get(step["id"]))
    if estimate is not None:
        data["estimate"] = {
            "models": {
                name: dataclasses.asdict(model) for name, model in sorted(estimate.models.items())
            },
            "dynamic_steps": estimate.dynamic_steps,
            "calls": dataclasses.asdict(estimate.calls),
            "usd": dataclasses.asdict(estimate.usd),
            "cost_known": not estimate.unpriced,
            "unpriced_models": estimate.unpriced,
            "max_usd": estimate.max_usd,
            "max_usd_enforceable": estimate.max_usd is None or not estimate.unpriced,
        }
    return data


def render_json(
    plan: Plan, estimate: Estimate | None = None, cached: dict[str, bool] | None = None
) -> str:
    return (
        json.dumps(plan_to_dict(plan, estimate, cached), indent=2, ensure_ascii=False, default=list)
        + "\n"
    )
