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
from codexflow.spec import Spec, load_spec

if TYPE_CHECKING:
    from codexflow.compiler.plan import Plan, Step
    from codexflow.runtime.types import Observer, RunResult


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
    run_id: str | None = None  # the run's id, when the caller needs it before the run ends


def apply(
    spec_or_path: Spec | str | Path,
    options: ApplyOptions | None = None,
    observer: Observer | None = None,
    *,
    spec_path: str | Path | None = None,
) -> RunResult:
    """Run a spec to the end. Returns the RunResult; raises SpecError for bad specs/inputs."""
    from codexflow.runtime import RunOptions, run_plan

    options = options or ApplyOptions()
    if isinstance(spec_or_path, Spec):
        spec, where = spec_or_path, Path(spec_path) if spec_path else Path.cwd() / "spec.yaml"
    else:
        spec, where = load_spec(spec_or_path), Path(spec_or_path)
    if options.model:
        spec = with_model(spec, options.model)
    plan = compile(spec, options.inputs)
    workspace = resolve_workspace(spec, where, options.workspace)
    provider, ledger = build_provider(spec, options)
    executor = build_executor(spec, plan, provider, workspace, options)

    def ask_gate(step: Step) -> bool:
        assert options.ask is not None
        return options.ask(f"Approve task `{step.task}` ({step.id})?")

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
        run_id=options.run_id,
    )
    result = run_plan(plan, executor, run_options, observer)
    if executor.audit is not None:  # every tool call of the run, refusals included
        executor.audit.write_jsonl(result.run_dir / "audit.jsonl")
    return result


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
    if options.replay:
        cassette = _read(Cassette.load, options.replay, "--replay")
        return Provider(ledger=ledger, cassette=cassette, mode="replay", script=script), ledger
    rpm = {name: p.rpm for name, p in spec.providers.items() if p.rpm}
    if options.record:
        cassette = Cassette(options.record)
        return Provider(
            ledger=ledger, cassette=cassette, mode="record", script=script, rpm=rpm
        ), ledger
    return Provider(ledger=ledger, script=script, rpm=rpm), ledger


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
    spec: Spec, plan: Plan, provider: Any, workspace: Path, options: ApplyOptions
) -> Any:
    """Agents with their tools: one audit log and one in-run memory store for the whole run."""
    from codexflow.agents import AgentExecutor
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
        memory=InMemoryStore(),
        approve=approve_tool,
        allow_unsafe=options.allow_unsafe,
    )


def parse_approvals(names: Iterable[str]) -> frozenset[str]:
    return frozenset(name.strip() for name in names if name.strip())
