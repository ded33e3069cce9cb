"""What a plan may cost before it runs: LLM calls and dollars, as ranges.

The figures are deliberately rough and say so: the low end is one call per step with a short
answer; the high end is every step using all of its tool-calling turns (and a repair turn
for structured output), with the context growing each turn. Fan-outs whose items are only
known at run time are counted per item.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from codexflow.compiler.plan import Plan, Step
from codexflow.spec import Spec
from codexflow.spec.catalog import OWN_PREFIXES

CHARS_PER_TOKEN = 4
SYSTEM_TOKENS = 400  # a role preset plus tool descriptions
CONTEXT_TOKENS = 600  # one upstream output shown to the step
TOOL_RESULT_TOKENS = 1_500  # what one tool-calling turn adds to the conversation
LOW_COMPLETION = 150
HIGH_COMPLETION = 1_000

Prices = Callable[[str], tuple[float, float] | None]


@dataclass
class Range:
    low: float = 0.0
    high: float = 0.0

    def add(self, low: float, high: float, times: int = 1) -> None:
        self.low += low * times
        self.high += high * times


@dataclass
class ModelEstimate:
    model: str
    calls: Range = field(default_factory=Range)
    usd: Range = field(default_factory=Range)
    priced: bool = True
    per_item_calls: Range = field(default_factory=Range)  # for fan-outs of unknown size
    per_item_usd: Range = field(default_factory=Range)


@dataclass
class Estimate:
    models: dict[str, ModelEstimate]
    dynamic_steps: list[str]  # fan-outs counted per item
    max_usd: float | None = None  # the spec's USD budget, which unpriced models escape

    @property
    def unpriced(self) -> list[str]:
        """Models whose cost is unknown: the USD figures leave them out."""
        return sorted(name for name, model in self.models.items() if not model.priced)

    @property
    def calls(self) -> Range:
        return Range(
            sum(m.calls.low for m in self.models.values()),
            sum(m.calls.high for m in self.models.values()),
        )

    @property
    def usd(self) -> Range:
        return Range(
            sum(m.usd.low for m in self.models.values()),
            sum(m.usd.high for m in self.models.values()),
        )


def _step_range(step: Step, prices: tuple[float, float] | None) -> tuple[Range, Range]:
    base = (
        SYSTEM_TOKENS
        + len(step.prompt + step.instruction) // CHARS_PER_TOKEN
        + CONTEXT_TOKENS * len(step.context)
    )
    turns = step.max_turns + (1 if step.output_schema else 0)
    calls = Range(1, turns)
    completion_high = step.max_tokens or HIGH_COMPLETION
    if prices is None:
        return calls, Range()
    inp, out = prices
    low = base * inp + LOW_COMPLETION * out
    # Each turn resends the conversation so far: prompts grow by a tool result per turn.
    high = sum(
        (base + turn * TOOL_RESULT_TOKENS) * inp + completion_high * out for turn in range(turns)
    )
    return calls, Range(low, high)


def spec_prices(spec: Spec, table: Prices) -> Prices:
    """Prices of a spec's models: `providers.<prefix>.price` where declared, else `table`."""
    declared = {name: p.price.per_token() for name, p in spec.providers.items() if p.price}

    def prices(model: str) -> tuple[float, float] | None:
        prefix = model.split("/", 1)[0] if "/" in model else ""
        if prefix in OWN_PREFIXES:
            return 0.0, 0.0  # answered by codexflow itself: free
        return declared.get(prefix) or table(model)

    return prices


def estimate_plan(
    plan: Plan,
    prices: Prices,
    cached: dict[str, bool] | None = None,
    max_usd: float | None = None,
) -> Estimate:
    """Calls and cost of the steps that would run; steps found in the cache cost nothing."""
    models: dict[str, ModelEstimate] = {}
    dynamic: list[str] = []
    for step in plan.steps:
        if step.kind == "approval" or step.model is None or (cached or {}).get(step.id):
            continue
        price = prices(step.model)
        entry = models.setdefault(step.model, ModelEstimate(step.model))
        entry.priced = entry.priced and price is not None
        calls, usd = _step_range(step, price)
        if isinstance(step.for_each, str):
            dynamic.append(step.id)
            entry.per_item_calls.add(calls.low, calls.high)
            entry.per_item_usd.add(usd.low, usd.high)
            continue
        times = len(step.for_each) if isinstance(step.for_each, tuple) else 1
        entry.calls.add(calls.low, calls.high, times)
        entry.usd.add(usd.low, usd.high, times)
    return Estimate(models, dynamic, max_usd)
