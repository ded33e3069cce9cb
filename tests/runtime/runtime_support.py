"""Hand-built plans and fake executors for the runtime tests (and the benchmark)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codexflow.agents.step_io import StepCall, StepResult
from codexflow.compiler.plan import Plan, Step


@dataclass(frozen=True)
class S:
    """A step as a test writes it: id, dependencies, and optionally a prompt, for_each, kind."""

    id: str
    deps: tuple[str, ...] = ()
    prompt: str = ""
    for_each: str | tuple[Any, ...] | None = None
    kind: str = "agent"
    agent: str | None = "worker"
    task: str | None = None
    retries: int = 0
    timeout: float = 60.0
    model: str | None = "fake/model"
    version: str = ""  # change it to simulate a spec edit of this step


def make_plan(name: str, steps: Iterable[S], inputs: dict[str, Any] | None = None) -> Plan:
    """A Plan with content hashes chained through dependencies, like the compiler's."""
    built: dict[str, Step] = {}
    for s in steps:
        prompt = s.prompt or f"do {s.id}"
        material = "|".join(
            [s.id, s.kind, prompt, repr(s.for_each), s.version, *(built[d].hash for d in s.deps)]
        )
        built[s.id] = Step(
            id=s.id, task=s.task or s.id, kind=s.kind,  # type: ignore[arg-type]
            agent=None if s.kind == "approval" else s.agent, model=s.model, fallbacks=(),
            prompt="" if s.kind == "approval" else prompt, instruction="", depends_on=s.deps,
            context=s.deps, tools=(), output_schema=None, for_each=s.for_each, temperature=0.0,
            max_tokens=None, max_turns=1, retries=s.retries, retry_delay=0.01, timeout=s.timeout,
            cache=s.kind != "approval", is_result=True, group=0, reason="",
            hash=hashlib.sha256(material.encode()).hexdigest(),
        )  # fmt: skip
    order = tuple(built.values())
    edges = tuple((d, s.id) for s in order for d in s.depends_on)
    results = {s.task: s.id for s in order if s.kind != "approval"}
    return Plan(
        name=name, steps=order, edges=edges, groups=(), inputs=inputs or {}, task_results=results
    )


def default_answer(call: StepCall) -> Any:
    """Deterministic: a digest of the prompt, the visible context and the item."""
    seen = ",".join(f"{k}={v}" for k, v in sorted(call.context.items()))
    return f"{call.step.id}<{call.prompt}|{seen}|{call.item}>"


@dataclass
class FakeExecutor:
    """Sleeps a fixed latency, answers deterministically, counts calls; may fail or log."""

    latency: float = 0.0
    delays: dict[str, float] = field(default_factory=dict)  # unit id -> latency, overrides
    answer: Callable[[StepCall], Any] = default_answer
    fail: dict[str, int] = field(default_factory=dict)  # unit id -> how many times to fail first
    log: Path | None = None  # each finished unit id appended as a line (the crash test reads it)
    raise_on: dict[str, BaseException] = field(default_factory=dict)  # unit id -> error, once
    calls: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    active: int = 0
    peak: int = 0
    by_agent: dict[str, int] = field(default_factory=dict)  # agent -> units running now
    agent_peak: dict[str, int] = field(default_factory=dict)  # agent -> most at once

    def execute(self, call: StepCall) -> StepResult:
        unit = (
            call.step.id
            if call.index is None
            else f"{call.step.id.removesuffix('[*]')}[{call.index}]"
        )
        agent = call.step.agent or ""
        with self.lock:
            self.calls.append(unit)
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.by_agent[agent] = self.by_agent.get(agent, 0) + 1
            self.agent_peak[agent] = max(self.agent_peak.get(agent, 0), self.by_agent[agent])
        try:
            delay = self.delays.get(unit, self.latency)
            if delay:
                time.sleep(delay)
            with self.lock:
                if unit in self.raise_on:
                    raise self.raise_on.pop(unit)
                if self.fail.get(unit, 0) > 0:
                    self.fail[unit] -= 1
                    raise ConnectionError(f"transient failure of {unit}")
            if self.log is not None:
                with self.log.open("a", encoding="utf-8") as handle:
                    handle.write(unit + "\n")
            return StepResult(output=self.answer(call), model="fake/model", prompt_tokens=3,
                              completion_tokens=2, cost_usd=0.001, llm_calls=1)  # fmt: skip
        finally:
            with self.lock:
                self.active -= 1
                self.by_agent[agent] -= 1


def six_step_plan(edited: str = "") -> Plan:
    """plan → fan-out of 3 → (a, b in parallel) → join → final: 8 units, 6 steps.

    `edited` names a step whose definition (and so its hash) changes, as after a spec edit.
    """
    return make_plan(
        "six",
        [
            S("plan", prompt="list units for {{ inputs.target }}"),
            S(
                "work[*]",
                ("plan",),
                prompt="work on {{ item }}",
                for_each=("x", "y", "z"),
                task="work",
            ),
            S(
                "a",
                ("work[*]",),
                prompt="a sees {{ tasks.work.output | length }}",
                version="2" if edited == "a" else "",
            ),
            S("b", ("plan",)),
            S("join", ("a", "b")),
            S("final", ("join",), prompt="final: {{ tasks.join.output }}"),
        ],
        inputs={"target": "src/"},
    )
