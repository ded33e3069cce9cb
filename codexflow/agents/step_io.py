"""What the runtime hands an agent step, and what the step hands back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from codexflow.compiler.plan import Step


@dataclass(frozen=True, slots=True)
class StepCall:
    """One execution of a plan step (one item of a fan-out is one call)."""

    step: Step
    prompt: str  # the task prompt, already rendered
    context: dict[str, Any]  # step id -> output, only the steps in `step.context`
    run_id: str
    item: Any = None  # the fan-out item, when the step has `for_each`
    index: int | None = None  # the item's position, when the step has `for_each`


@dataclass(frozen=True, slots=True)
class StepResult:
    """The answer of a step and what it cost."""

    output: Any  # str, or the parsed JSON when the step has an output schema
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True  # False when a call's model has no known price (cost_usd is then 0)
    llm_calls: int = 0
    tool_calls: int = 0
    records: list[dict[str, Any]] = field(
        default_factory=list
    )  # transcript: messages, tool results


class StepExecutor(Protocol):
    """Runs agent/decompose/merge steps. The runtime owns approval gates, caching and retries."""

    def execute(self, call: StepCall) -> StepResult: ...
