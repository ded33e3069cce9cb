"""The Plan: the frozen execution graph that renderers print and the runtime runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# agent:     one LLM conversation of one agent, with its tools
# decompose: a coordinator's structured answer that splits the work for the workers
# merge:     a coordinator/hub combining its workers' answers into the task's result
# approval:  a person says yes before what follows it runs (no LLM call)
# Any of agent/decompose/merge may carry `for_each`: a fan-out template expanded at run time.
StepKind = Literal["agent", "decompose", "merge", "approval"]


@dataclass(frozen=True, slots=True)
class Step:
    """One node of the plan: what runs, who runs it, what it waits for and what it may see."""

    id: str  # unique, readable: "plan", "review.decompose", "docs.ring[2].writer", "refactor[*]"
    task: str  # the spec task it comes from
    kind: StepKind
    agent: str | None  # None for approval gates
    model: str | None
    fallbacks: tuple[str, ...]
    prompt: str  # the task's Jinja template, before rendering
    instruction: (
        str  # what the topology asks of this step ("decompose …", "merge …"); "" for plain steps
    )
    depends_on: tuple[str, ...]  # step ids that must finish first (graph edges in)
    context: tuple[str, ...]  # step ids whose outputs this step may see (its visibility)
    tools: tuple[str, ...]
    output_schema: dict[str, Any] | None
    for_each: str | tuple[Any, ...] | None  # fan-out: one run per item, `item` in the prompt
    temperature: float
    max_tokens: int | None
    max_turns: int
    retries: int
    retry_delay: float
    timeout: float
    cache: bool
    is_result: bool  # its output is the task's output (`tasks.<task>.output`)
    group: int  # parallel group: steps of one group may run at the same time
    reason: str  # why this agent (agent: auto), or the topology role
    hash: str  # content hash: this step's definition and its upstream hashes (cache key material)


@dataclass(frozen=True, slots=True)
class Assignment:
    """Why an `agent: auto` task went to the agent it did."""

    task: str
    agent: str
    covered: tuple[str, ...]  # the required capabilities (all of them: coverage is a must)
    load: int  # how many auto tasks this agent received


@dataclass(frozen=True, slots=True)
class Plan:
    """A compiled spec. Steps are in topological order; `groups` lists parallel groups in order."""

    name: str
    steps: tuple[Step, ...]
    edges: tuple[tuple[str, str], ...]
    groups: tuple[tuple[str, ...], ...]
    inputs: dict[str, Any]
    assignments: tuple[Assignment, ...] = ()
    task_results: dict[str, str] = field(default_factory=dict)  # task id -> step id of its result

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)
