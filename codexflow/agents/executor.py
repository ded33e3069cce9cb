"""AgentExecutor: runs one plan step as an agent conversation (the runtime's StepExecutor)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codexflow.agents.loop import DEFAULT_RESULT_CAP, ChatProvider, Toolset, run_loop
from codexflow.agents.messages import build_messages
from codexflow.agents.presets import system_prompt
from codexflow.agents.step_io import StepCall, StepResult
from codexflow.compiler.plan import Plan, Step
from codexflow.errors import RunError
from codexflow.providers.types import ModelRoute
from codexflow.spec.models import AgentSpec, Spec

if TYPE_CHECKING:
    from codexflow.tools.audit import AuditLog
    from codexflow.tools.context import ToolContext
    from codexflow.tools.memory import MemoryStore

# (spec, agent name, tool context) -> the agent's tools; codexflow.tools.build_toolset by default.
ToolsetFactory = Callable[[Spec, str, "ToolContext"], Toolset]


def build_route(spec: Spec, step: Step) -> ModelRoute:
    """How `step` reaches its model: the compiled step's settings, and the connection settings
    of the provider named by the model string's prefix (`openai` in `openai/gpt-4o`)."""
    if step.agent is None:
        raise RunError(f"step {step.id!r}: a {step.kind} step has no agent and no model")
    agent = _agent(spec, step)
    model = step.model or spec.model_for(step.agent)
    provider = spec.providers.get(model.split("/", 1)[0]) if "/" in model else None
    return ModelRoute(
        model=model,
        fallbacks=tuple(step.fallbacks or agent.fallbacks),
        temperature=step.temperature,
        max_tokens=step.max_tokens,
        timeout=step.timeout,
        retries=step.retries,
        retry_delay=step.retry_delay,
        api_base=provider.api_base if provider else None,
        api_key_env=provider.api_key_env if provider else None,
    )


class AgentExecutor:
    """Runs agent, decompose and merge steps; approval gates belong to the runtime.

    One executor serves a whole run: it is stateless between calls (each call builds and closes
    its own toolset), so the runtime may call `execute` from several threads at once.
    """

    def __init__(
        self,
        spec: Spec,
        provider: ChatProvider,
        *,
        workspace: str | Path,
        toolset_factory: ToolsetFactory | None = None,
        plan: Plan | None = None,
        audit: AuditLog | None = None,
        memory: MemoryStore | None = None,
        approve: Callable[[str, dict[str, Any]], bool] | None = None,
        allow_unsafe: bool = False,
        result_cap: int = DEFAULT_RESULT_CAP,
    ) -> None:
        self.spec = spec
        self.provider = provider
        self.workspace = Path(workspace)
        self.toolset_factory = toolset_factory
        self.audit = audit
        self.memory = memory
        self.approve = approve
        self.allow_unsafe = allow_unsafe
        self.result_cap = result_cap
        self._lock = threading.Lock()
        # Which agent ran each step, so a merge step's context says whose answer is whose.
        self.labels: dict[str, str] = (
            {s.id: s.agent for s in plan.steps if s.agent is not None} if plan is not None else {}
        )

    def execute(self, call: StepCall) -> StepResult:
        """Run the step's conversation to its final answer (parsed JSON with an output schema)."""
        step = call.step
        started = time.monotonic()
        if step.kind == "approval" or step.agent is None:
            raise RunError(
                f"step {step.id!r}: approval gates are run by the runtime, not by an agent"
            )
        agent = _agent(self.spec, step)
        route = build_route(self.spec, step)
        toolset = self._toolset(call, step.agent, agent) if step.tools else None
        try:
            system = system_prompt(step.agent, agent, has_tools=toolset is not None)
            messages = build_messages(system, call, labels=self.labels)
            return run_loop(
                self.provider,
                route,
                messages,
                step,
                toolset=toolset,
                result_cap=self.result_cap,
                deadline=started + step.timeout,
                name=_call_id(call),
            )
        finally:
            if toolset is not None:
                toolset.close()

    def _toolset(self, call: StepCall, name: str, agent: AgentSpec) -> Toolset:
        # Imported here: the tools package pulls in MCP and sandbox helpers that plain
        # text steps (and `codexflow plan`) never need.
        from codexflow.tools.audit import AuditLog
        from codexflow.tools.context import ToolContext

        with self._lock:  # one audit log for every step, even when steps run in parallel
            if self.audit is None:
                self.audit = AuditLog()
        factory = self.toolset_factory
        if factory is None:
            from codexflow.tools import build_toolset

            factory = build_toolset
        context = ToolContext(
            workspace=self.workspace,
            run_id=call.run_id,
            step_id=_call_id(call),
            agent=name,
            audit=self.audit,
            approve=self.approve,
            writable=list(agent.writable) if agent.writable is not None else None,
            allow_unsafe=self.allow_unsafe,
            memory=self.memory,
        )
        return factory(self.spec, name, context)


def run_agent_step(
    spec: Spec,
    step: Step,
    prompt: str,
    context: Mapping[str, Any],
    provider: ChatProvider,
    *,
    item: Any = None,
    index: int | None = None,
    run_id: str = "local",
    workspace: str | Path | None = None,
    toolset_factory: ToolsetFactory | None = None,
    plan: Plan | None = None,
    **options: Any,
) -> StepResult:
    """Run one agent step without Prefect: `prompt` already rendered, `context` the upstream
    outputs by step id (only those in `step.context` reach the model). `options` go to
    AgentExecutor (audit, memory, approve, allow_unsafe, result_cap)."""
    executor = AgentExecutor(
        spec,
        provider,
        workspace=workspace if workspace is not None else spec.workspace,
        toolset_factory=toolset_factory,
        plan=plan,
        **options,
    )
    call = StepCall(
        step=step, prompt=prompt, context=dict(context), run_id=run_id, item=item, index=index
    )
    return executor.execute(call)


def _agent(spec: Spec, step: Step) -> AgentSpec:
    try:
        return spec.agents[step.agent or ""]
    except KeyError:
        raise RunError(
            f"step {step.id!r}: agent {step.agent!r} is not defined in the spec"
        ) from None


def _call_id(call: StepCall) -> str:
    # One fan-out item is one call of the plan node "refactor[*]": name it "refactor[3]".
    if call.index is not None and call.step.id.endswith("[*]"):
        return f"{call.step.id[:-3]}[{call.index}]"
    return call.step.id
