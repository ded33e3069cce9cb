"""The Python API: `load`, `compile`, `apply` — what the CLI does, callable from code.

`apply` is the one place that wires the pipeline together: spec -> plan -> a provider (live,
recording, replaying or scripted) with the run's budget -> agents with their tools -> the
runtime. Everything heavy is imported inside the functions that need it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from codexflow.errors import BudgetExceeded, Issue, SpecError
from codexflow.events import EventBus
from codexflow.spec import Spec, load_spec, load_spec_source

if TYPE_CHECKING:
    from codexflow.compiler.plan import Plan, Step
    from codexflow.runtime.types import Observer, RunOptions, RunResult


def load(path: str | Path) -> Spec:
    """Parse, validate and check a spec file (raises SpecError with every problem)."""
    return load_spec(path)


def compile(spec: Spec, inputs: dict[str, Any] | None = None) -> Plan:
    """Compile a spec and the run's inputs into a Plan."""
    from codexflow.compiler import compile_spec

    return compile_spec(spec, inputs)


@dataclass
class ApplyOptions:
    """Everything `codexflow apply` can be told; every field has a safe default."""

    inputs: dict[str, Any] = field(default_factory=dict)
    model: str | None = None  # every agent's model, fallbacks dropped
    record: Path | None = None  # write every exchange to this cassette
    replay: Path | None = None  # answer from this cassette; no network, no key
    script: Path | None = None  # answer `scripted/...` models from this script
    workspace: Path | None = None  # instead of the spec's `workspace`
    state_dir: Path = Path(".codexflow")
    fresh: bool = False
    approve: frozenset[str] = frozenset()  # task ids (gates) and tool names approved ahead
    ask: Callable[[str], bool] | None = None  # a yes/no question to a person; None = headless
    ask_budget: Callable[[BudgetExceeded], float | None] | None = None
    engine: Literal["prefect", "local"] = "prefect"
    allow_unsafe: bool = False  # shell tools without the sandbox
    verbose: bool = False
    stop_event: threading.Event | None = None  # set it (any thread) to stop the run cleanly
    events: EventBus | None = None  # the run's step/gate/budget events go here as they happen
    # Another apply holds the state dir: wait for it (saying so through `on_wait`), or fail.
    wait_for_state: bool = True
    on_wait: Callable[[str], None] | None = None
    # Warnings of the spec (models litellm does not know, ...): shown, never fatal.
    on_warnings: Callable[[list[Issue]], None] | None = None
    run_id: str | None = None  # the run's id, when the caller needs it before the run ends


@dataclass
class PreparedApply:
    """A spec made ready to run: its plan, the executor with its tools, the run's options."""

    spec: Spec
    spec_path: Path
    plan: Plan
    executor: Any
    run_options: RunOptions
    options: ApplyOptions
    memory: Any = None  # the run's RunMemory (session, agent states, events, lasting memory)

    def parameters(self) -> dict[str, Any]:
        """The `apply-spec` flow run's parameters: what the Prefect UI shows for the run."""
        return {
            "spec": str(self.spec_path),
            "inputs": dict(self.options.inputs),
            "workspace": str(self.options.workspace) if self.options.workspace else None,
            "state_dir": str(self.options.state_dir),
            "approve": sorted(self.options.approve),
            "model": self.options.model,
            "fresh": self.options.fresh,
        }

    def locked(self) -> Any:
        """One apply per state dir: two at once would both run (and pay for) the same steps."""
        from codexflow.runtime.state_lock import state_lock

        options = self.options
        return state_lock(options.state_dir, wait=options.wait_for_state, on_wait=options.on_wait)

    def start(self) -> None:
        """The run's session row in the memory database, before its first step."""
        if self.memory is not None:
            self.memory.start(self.plan.inputs)

    def finish(self, result: RunResult) -> None:
        """After the run, inside its flow run when there is one: tool calls become events, the
        session and each agent get their final state. (Every tool call, refusals included, is
        already in the run's audit.jsonl, appended as it happened.)"""
        if self.memory is None:
            return
        audit = getattr(self.executor, "audit", None)
        try:
            self.memory.finish(result, audit.records() if audit is not None else ())
        finally:
            self.memory.close()

    def abort(self, exc: BaseException) -> None:
        if self.memory is not None:
            self.memory.abort(f"{type(exc).__name__}: {exc}")
            self.memory.close()


def prepare_apply(
    spec_or_path: Spec | str | Path,
    options: ApplyOptions | None = None,
    *,
    spec_path: str | Path | None = None,
) -> PreparedApply:
    """Load, compile and wire a run without starting it (raises SpecError for bad input)."""
    from codexflow.runtime import RunOptions

    options = options or ApplyOptions()
    if isinstance(spec_or_path, Spec):
        spec, where = spec_or_path, Path(spec_path) if spec_path else Path.cwd() / "spec.yaml"
    else:
        # A run given its own workspace does not need the spec's to exist.
        check = options.workspace is None
        spec, source = load_spec_source(spec_or_path, check_workspace=check)
        where = Path(spec_or_path)
        if source.warnings and options.on_warnings is not None:
            options.on_warnings(source.warnings)
    if options.model:
        spec = with_model(spec, options.model)
    plan = compile(spec, options.inputs)
    check_approvals(spec, plan, options.approve)
    workspace = resolve_workspace(spec, where, options.workspace)
    provider, ledger = build_provider(spec, options)
    from codexflow.memory.session import RunMemory
    from codexflow.runtime.record import new_run_id

    run_memory = RunMemory(spec, options.state_dir, where, options.run_id or new_run_id())
    executor = build_executor(spec, plan, provider, workspace, options, run_memory.memory)

    def ask_gate(step: Step) -> bool:
        assert options.ask is not None
        return options.ask(gate_question(spec, plan, step))

    run_options = RunOptions(
        state_dir=options.state_dir,
        max_concurrency=spec.defaults.max_concurrency,
        agent_limits={name: agent.replicas for name, agent in spec.agents.items()},
        provider_limits={
            name: limits.max_concurrency
            for name, limits in spec.providers.items()
            if limits.max_concurrency
        },
        fresh=options.fresh,
        approve=options.approve,
        ask_approval=ask_gate if options.ask else None,
        # Interactive: a prompt asks for a new limit. Headless with a Prefect server: the run
        # pauses with a form in the UI (budget_pause); otherwise it stops with results kept.
        on_budget=options.ask_budget,
        raise_budget=ledger.raise_limit,
        engine=options.engine,
        verbose=options.verbose,
        stop_event=options.stop_event,
        events=run_memory.bus,
        run_id=run_memory.run_id,
        memory=run_memory.template_values(),
    )
    if options.events is not None:  # the caller listens too (the MCP server, the HTTP API)
        run_memory.bus.subscribe(options.events.emit)
    return PreparedApply(spec, where, plan, executor, run_options, options, run_memory)


def apply(
    spec_or_path: Spec | str | Path,
    options: ApplyOptions | None = None,
    observer: Observer | None = None,
    *,
    spec_path: str | Path | None = None,
) -> RunResult:
    """Run a spec to the end. Returns the RunResult; raises SpecError for bad specs/inputs."""
    from codexflow.runtime import run_plan

    ready = prepare_apply(spec_or_path, options, spec_path=spec_path)
    with ready.locked():
        try:
            return run_plan(
                ready.plan,
                ready.executor,
                ready.run_options,
                observer,
                parameters=ready.parameters(),
                after=ready.finish,
                before=ready.start,
            )
        except BaseException as exc:
            ready.abort(exc)
            raise


def with_model(spec: Spec, model: str) -> Spec:
    """The spec with every agent on `model` (and no fallbacks to other providers)."""
    agents = {
        name: agent.model_copy(update={"model": model, "fallbacks": []})
        for name, agent in spec.agents.items()
    }
    defaults = spec.defaults.model_copy(update={"model": model})
    return spec.model_copy(update={"agents": agents, "defaults": defaults})


def resolve_workspace(spec: Spec, spec_path: Path, override: Path | None) -> Path:
    """The directory tools are confined to: `--workspace`, else the spec's, relative to its file."""
    from codexflow.tools import resolve_workspace as spec_workspace

    workspace = override.resolve() if override is not None else spec_workspace(spec, spec_path)
    if not workspace.is_dir():
        source = "--workspace" if override is not None else str(spec_path)
        raise SpecError(
            [Issue(source, 0, 0, "workspace", f"the workspace {workspace} is not a directory")]
        )
    return workspace


def build_provider(spec: Spec, options: ApplyOptions) -> tuple[Any, Any]:
    """The run's Provider (live, recording, replaying or scripted) and its budget Ledger."""
    from codexflow.providers import Cassette, Ledger, Provider, Script

    budget = spec.budget
    ledger = Ledger(budget.max_usd if budget else None, budget.max_tokens if budget else None)
    if options.record and options.replay:
        raise SpecError([Issue("--record", 0, 0, "", "--record and --replay exclude each other")])
    script = _read(Script.load, options.script, "--script") if options.script else None
    prices = {name: p.price.per_token() for name, p in spec.providers.items() if p.price}
    if options.replay:
        cassette = _read(Cassette.load, options.replay, "--replay")
        replaying = Provider(
            ledger=ledger, cassette=cassette, mode="replay", script=script, prices=prices
        )
        return replaying, ledger
    rpm = {name: p.rpm for name, p in spec.providers.items() if p.rpm}
    if options.record:
        cassette = Cassette(options.record)
        return Provider(
            ledger=ledger, cassette=cassette, mode="record", script=script, rpm=rpm, prices=prices
        ), ledger
    return Provider(ledger=ledger, script=script, rpm=rpm, prices=prices), ledger


def _read(load: Callable[[Path], Any], path: Path, option: str) -> Any:
    """Load a script or cassette; a missing or malformed file is the user's input error."""
    if not path.is_file():
        raise SpecError([Issue(str(path), 0, 0, "", f"no such file (given to {option})")])
    try:
        return load(path)
    except Exception as exc:  # YAML/JSON/shape errors of several libraries: report, don't trace
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(
            [Issue(str(path), line, col, "", f"cannot read this file: {problem}")]
        ) from None


def build_executor(
    spec: Spec,
    plan: Plan,
    provider: Any,
    workspace: Path,
    options: ApplyOptions,
    memory: Any = None,
) -> Any:
    """Agents with their tools: one audit log (appended to the run's audit.jsonl as calls
    happen) and one memory store (an in-run one when none is given; `apply` gives the spec's
    lasting memory) for the whole run; no tool may touch the state dir."""
    from functools import partial

    from codexflow.agents import AgentExecutor
    from codexflow.tools import AuditLog, build_toolset
    from codexflow.tools.memory import InMemoryStore

    def approve_tool(tool: str, arguments: dict[str, Any]) -> bool:
        if tool in options.approve:
            return True
        if options.ask is None:
            return False  # headless: a dangerous call needs --approve TOOL
        return options.ask(f"Allow the tool `{tool}` with {arguments}?")

    return AgentExecutor(
        spec,
        provider,
        workspace=workspace,
        plan=plan,
        memory=memory if memory is not None else InMemoryStore(),
        approve=approve_tool,
        allow_unsafe=options.allow_unsafe,
        audit=AuditLog(options.state_dir),
        toolset_factory=partial(build_toolset, protected=[options.state_dir]),
    )


def check_approvals(spec: Spec, plan: Plan, names: Iterable[str]) -> None:
    """Every `--approve NAME` must name a task, a gate step or a tool of the spec: a typo would
    otherwise be accepted silently and the gate denied later."""
    from codexflow.spec.diagnostics import suggest
    from codexflow.spec.models import BUILTIN_TOOLS

    known = set(spec.tasks) | {step.id for step in plan.steps} | set(BUILTIN_TOOLS)
    known |= set(spec.tools)
    mcp = [name for name, tool in spec.tools.items() if getattr(tool, "kind", "") == "mcp"]
    issues = []
    for name in sorted(set(names)):
        if name in known or any(name.startswith((f"{m}.", f"{m}__", f"{m}_")) for m in mcp):
            continue
        gates = sorted(step.task for step in plan.steps if step.kind == "approval")
        hint = suggest(name, known) or (
            f"the gates of this spec: {', '.join(gates)}" if gates else "this spec has no gates"
        )
        issues.append(
            Issue(
                "--approve",
                0,
                0,
                "",
                f"`{name}` is not a task, gate or tool of {spec.name}",
                hint,
            )
        )
    if issues:
        raise SpecError(issues)


def gate_question(spec: Spec, plan: Plan, step: Step) -> str:
    """What a person is asked at a gate: which agent, what it will be told, with which inputs."""
    from codexflow.spec import templates

    task = spec.tasks.get(step.task)
    steps = [s for s in plan.steps if s.task == step.task and s.kind != "approval"]
    lines = [f"Approve task `{step.task}` ({step.id})?"]
    agents = list(dict.fromkeys(s.agent for s in steps if s.agent))
    models = sorted({s.model for s in steps if s.model})
    if task is not None and task.agent == "swarm" and spec.topology is not None:
        lines.append(f"  agent: swarm ({spec.topology.kind}: {', '.join(agents)})")
    elif agents:
        lines.append(f"  agent: {', '.join(agents)}")
    if models:
        lines.append(f"  model: {', '.join(models)}")
    if task is not None:
        try:
            # Upstream outputs are not known here: name them where the prompt shows them.
            upstream = {name: {"output": f"<output of {name}>"} for name in spec.tasks}
            variables = {"inputs": plan.inputs, "tasks": upstream, "item": "<each item>"}
            prompt = templates.render(task.prompt, variables | {"memory": {}})
        except Exception:  # it reads upstream outputs not known here: show the template
            prompt = task.prompt
        lines.append("  prompt: " + _shorten(prompt, 600).replace("\n", "\n          "))
    if plan.inputs:
        shown = ", ".join(f"{k}={_shorten(repr(v), 60)}" for k, v in sorted(plan.inputs.items()))
        lines.append(f"  inputs: {shown}")
    return "\n".join(lines) + "\n"


def _shorten(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_approvals(names: Iterable[str]) -> frozenset[str]:
    return frozenset(name.strip() for name in names if name.strip())
