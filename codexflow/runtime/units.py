"""From plan steps to runnable units: template variables, fan-out items, rendered calls, cache keys."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codexflow.agents.step_io import StepCall
from codexflow.compiler.plan import Plan, Step
from codexflow.runtime.store import ResultStore, cache_key
from codexflow.spec.templates import evaluate, render


@dataclass(frozen=True, slots=True)
class Unit:
    """One execution: a whole step, or one item of a fan-out step."""

    id: str
    step: Step
    index: int | None = None
    item: Any = None

    @property
    def name(self) -> str:
        """The Prefect task run name: `coder: refactor[2]`, `approval: review.approval`."""
        return f"{self.step.agent or self.step.kind}: {self.id}"


def unit_id(step: Step, index: int | None) -> str:
    if index is None:
        return step.id
    base = step.id[: -len("[*]")] if step.id.endswith("[*]") else step.id
    return f"{base}[{index}]"


def variables(
    plan: Plan, outputs: dict[str, Any], memory: dict[str, Any], item: Any = None
) -> dict[str, Any]:
    """Template variables; `tasks` holds only the tasks whose result step has finished."""
    tasks = {
        task: {"output": outputs[step_id]}
        for task, step_id in plan.task_results.items()
        if step_id in outputs
    }
    return {"inputs": plan.inputs, "tasks": tasks, "item": item, "memory": memory}


def expand(plan: Plan, step: Step, outputs: dict[str, Any], memory: dict[str, Any]) -> list[Unit]:
    """The units of a step: itself, or one per for_each item (evaluated from upstream outputs)."""
    if step.for_each is None:
        return [Unit(step.id, step)]
    if isinstance(step.for_each, str):
        items = evaluate(step.for_each, variables(plan, outputs, memory))
    else:
        items = step.for_each
    if isinstance(items, dict | str) or not hasattr(items, "__iter__"):
        raise ValueError(f"for_each of {step.id} must be a list, got {type(items).__name__}")
    return [Unit(unit_id(step, i), step, i, item) for i, item in enumerate(items)]


def prepare(
    plan: Plan, unit: Unit, outputs: dict[str, Any], memory: dict[str, Any], run_id: str
) -> tuple[StepCall, str]:
    """The executor call of a unit and its cache key."""
    step = unit.step
    prompt = render(step.prompt, variables(plan, outputs, memory, unit.item)) if step.prompt else ""
    context = {dep: outputs[dep] for dep in step.context if dep in outputs}
    call = StepCall(
        step=step, prompt=prompt, context=context, run_id=run_id, item=unit.item, index=unit.index
    )
    return call, cache_key(step.hash, prompt, context, unit.item)


def critical_path_lengths(plan: Plan) -> dict[str, int]:
    """Longest path (in steps) from each step to a sink: the admission priority when a cap binds."""
    children: dict[str, list[str]] = {step.id: [] for step in plan.steps}
    for step in plan.steps:
        for dep in step.depends_on:
            children.setdefault(dep, []).append(step.id)
    length: dict[str, int] = {}
    for step in reversed(plan.steps):  # reverse topological order: children first
        length[step.id] = 1 + max((length[c] for c in children[step.id]), default=0)
    return length


def descendants(plan: Plan) -> dict[str, set[str]]:
    """Every step reachable from each step."""
    children: dict[str, list[str]] = {step.id: [] for step in plan.steps}
    for step in plan.steps:
        for dep in step.depends_on:
            children.setdefault(dep, []).append(step.id)
    below: dict[str, set[str]] = {}
    for step in reversed(plan.steps):
        found: set[str] = set()
        for child in children[step.id]:
            found.add(child)
            found |= below[child]
        below[step.id] = found
    return below


def cache_status(
    plan: Plan, state_dir: Path, memory: dict[str, Any] | None = None
) -> dict[str, bool]:
    """Which steps a run would take from the cache (no executor call), for `codexflow plan`.

    Walks the plan in order, rendering each step from the cached outputs of its upstream steps;
    a step whose upstream is not cached cannot be known and counts as not cached. Approval
    gates are asked on every run, so they count as not cached, but do not hide what follows.
    """
    store = ResultStore(state_dir)
    memory = memory or {}
    outputs: dict[str, Any] = {}
    status: dict[str, bool] = {}
    for step in plan.steps:
        if step.kind == "approval":
            status[step.id] = False
            outputs[step.id] = True
            continue
        if not step.cache or any(dep not in outputs for dep in step.depends_on):
            status[step.id] = False
            continue
        try:
            units = expand(plan, step, outputs, memory)
            found = []
            for unit in units:
                _, key = prepare(plan, unit, outputs, memory, run_id="")
                found.append(store.get(key))
        except Exception:  # a template that cannot render yet is simply "not cached"
            status[step.id] = False
            continue
        status[step.id] = all(result is not None for result in found)
        if status[step.id]:
            values = [result.output for result in found if result is not None]
            outputs[step.id] = values if step.for_each is not None else values[0]
    return status
