"""Turn each task into plan steps; tasks given to the swarm expand by the spec's topology.

A topology is real graph structure here, not a label: who runs, in which order, and whose
outputs each step may see (its context) all follow from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from codexflow.compiler.plan import StepKind
from codexflow.spec.models import (
    SWARM,
    HierarchicalTopology,
    MeshTopology,
    RingTopology,
    Spec,
    StarTopology,
    TaskSpec,
)


@dataclass
class Draft:
    """A step under construction; `after` holds step ids inside the task, `upstream` marks entry steps."""

    id: str
    task: str
    kind: StepKind
    agent: str | None
    instruction: str = ""
    after: list[str] = field(default_factory=list)
    context: list[str] = field(default_factory=list)
    upstream: bool = False  # waits for (and sees) the results of the task's dependencies
    output_schema: dict[str, Any] | None = None
    for_each: str | tuple[Any, ...] | None = None
    is_result: bool = False
    reason: str = ""


@dataclass
class Expansion:
    steps: list[Draft]
    result: str  # the step whose output is the task's output


def expand_task(name: str, task: TaskSpec, spec: Spec, agent: str) -> Expansion:
    """Steps of one task. `agent` is already resolved (named or assigned); SWARM expands."""
    if task.agent != SWARM:
        step_id = f"{name}[*]" if task.for_each is not None else name
        for_each = tuple(task.for_each) if isinstance(task.for_each, list) else task.for_each
        draft = Draft(
            step_id,
            name,
            "agent",
            agent,
            upstream=True,
            output_schema=task.output,
            for_each=for_each,
            is_result=True,
        )
        return Expansion([draft], step_id)
    topology = spec.topology
    members = _members(topology, spec)
    if isinstance(topology, HierarchicalTopology):
        return _hierarchical(name, task, topology.coordinator, members)
    if isinstance(topology, StarTopology):
        return _star(name, task, topology.coordinator, members)
    if isinstance(topology, RingTopology):
        return _ring(name, task, topology.order, topology.rounds)
    if isinstance(topology, MeshTopology):
        coordinator = topology.coordinator or members[0]
        return _mesh(name, task, members, topology.rounds, coordinator)
    raise AssertionError(f"unknown topology {topology!r}")  # the spec checks make this unreachable


def _members(topology: Any, spec: Spec) -> list[str]:
    if isinstance(topology, RingTopology):
        return list(topology.order)
    if topology.members is not None:
        return list(topology.members)
    coordinator = getattr(topology, "coordinator", None)
    if isinstance(topology, MeshTopology):
        return list(spec.agents)
    return [agent for agent in spec.agents if agent != coordinator]


def decomposition_schema(workers: list[str]) -> dict[str, Any]:
    """What a coordinator answers when it splits a task: one part per worker, by name."""
    return {
        "type": "object",
        "properties": {
            "parts": {
                "type": "object",
                "properties": {worker: {"type": "string"} for worker in workers},
                "required": list(workers),
                "additionalProperties": False,
            },
            "notes": {"type": "string"},
        },
        "required": ["parts"],
    }


def _hierarchical(name: str, task: TaskSpec, coordinator: str, workers: list[str]) -> Expansion:
    decompose = Draft(
        f"{name}.decompose",
        name,
        "decompose",
        coordinator,
        instruction=(
            "You coordinate this task. Do not do it yourself: split it into one self-contained "
            f"part for each worker ({', '.join(workers)}), written so that each worker can act "
            "on its part alone, in parallel with the others."
        ),
        upstream=True,
        output_schema=decomposition_schema(workers),
        reason="hierarchical: coordinator decomposes",
    )
    steps = [decompose]
    for worker in workers:
        steps.append(
            Draft(
                f"{name}.{worker}",
                name,
                "agent",
                worker,
                instruction=f"Do the part of the task that the coordinator `{coordinator}` assigned to you "
                f"(`parts.{worker}` in its plan); answer with your result.",
                after=[decompose.id],
                context=[decompose.id],
                reason="hierarchical: worker",
            )
        )
    merge = Draft(
        f"{name}.merge",
        name,
        "merge",
        coordinator,
        instruction="Your workers have answered. Merge their results into one answer to the task: "
        "resolve contradictions, keep what is right, say what is still missing.",
        after=[s.id for s in steps[1:]],
        context=[decompose.id, *[s.id for s in steps[1:]]],
        output_schema=task.output,
        is_result=True,
        reason="hierarchical: coordinator merges",
    )
    return Expansion([*steps, merge], merge.id)


def _star(name: str, task: TaskSpec, hub: str, spokes: list[str]) -> Expansion:
    brief = Draft(
        f"{name}.hub",
        name,
        "agent",
        hub,
        instruction="You are the hub. Brief the specialists on this task: what matters, what to "
        "look at, what to answer. Every specialist receives your brief, and only your brief.",
        upstream=True,
        reason="star: hub briefs every spoke",
    )
    steps = [brief]
    for spoke in spokes:
        steps.append(
            Draft(
                f"{name}.{spoke}",
                name,
                "agent",
                spoke,
                instruction=f"The hub `{hub}` briefed you above. Answer the task from your own speciality.",
                after=[brief.id],
                context=[brief.id],
                reason="star: spoke (sees only the hub)",
            )
        )
    merge = Draft(
        f"{name}.merge",
        name,
        "merge",
        hub,
        instruction="Every specialist has answered. Merge their answers into one result for the task.",
        after=[s.id for s in steps[1:]],
        context=[s.id for s in steps],
        output_schema=task.output,
        is_result=True,
        reason="star: hub merges",
    )
    return Expansion([*steps, merge], merge.id)


def _ring(name: str, task: TaskSpec, order: list[str], rounds: int) -> Expansion:
    steps: list[Draft] = []
    total = len(order) * rounds
    for lap in range(1, rounds + 1):
        for position, agent in enumerate(order):
            previous = steps[-1].id if steps else None
            last = len(steps) + 1 == total
            steps.append(
                Draft(
                    f"{name}.ring[{lap}].{agent}",
                    name,
                    "agent",
                    agent,
                    instruction=(
                        "You start the ring: write the first complete answer to the task."
                        if previous is None
                        else f"Improve the previous answer (by `{steps[-1].agent}`) and return the "
                        "complete improved answer, not a list of changes."
                    ),
                    after=[previous] if previous else [],
                    context=[previous] if previous else [],
                    upstream=previous is None,
                    output_schema=task.output if last else None,
                    is_result=last,
                    reason=f"ring: lap {lap} of {rounds}, turn {position + 1} of {len(order)}",
                )
            )
    return Expansion(steps, steps[-1].id)


def _mesh(name: str, task: TaskSpec, peers: list[str], rounds: int, coordinator: str) -> Expansion:
    steps: list[Draft] = []
    previous: list[str] = []
    for round_ in range(rounds + 1):
        current = []
        for peer in peers:
            draft = Draft(
                f"{name}.mesh[{round_}].{peer}",
                name,
                "agent",
                peer,
                instruction=(
                    "Answer the task independently."
                    if round_ == 0
                    else "Above are every peer's answers from the previous round, yours included. "
                    "Revise your answer: keep what holds, concede what the others showed wrong."
                ),
                after=list(previous),
                context=list(previous),
                upstream=round_ == 0,
                reason=f"mesh: round {round_} of {rounds}",
            )
            steps.append(draft)
            current.append(draft.id)
        previous = current
    merge = Draft(
        f"{name}.merge",
        name,
        "merge",
        coordinator,
        instruction="The peers have finished their rounds. Merge their final answers into one: "
        "where they agree, state it; where they still disagree, give both sides and your call.",
        after=list(previous),
        context=list(previous),
        output_schema=task.output,
        is_result=True,
        reason="mesh: final merge",
    )
    return Expansion([*steps, merge], merge.id)
