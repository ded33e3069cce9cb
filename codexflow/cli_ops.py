"""The operations commands: `deploy`, `runs` / `runs show`, `server` (registered by codexflow.cli)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

EXIT_OK, EXIT_RUN_FAILED, EXIT_INVALID = 0, 1, 2


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def deploy(
    spec_path: Annotated[
        Path, typer.Argument(metavar="SPEC", help="The spec file.", show_default=False)
    ],
    cron: Annotated[
        str | None, typer.Option("--cron", help="Schedule (five-field cron) instead of the spec's.")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="Time zone of the schedule (IANA name).")
    ] = None,
    pool: Annotated[
        str, typer.Option("--pool", help="Work pool (a `process` pool is created if missing).")
    ] = "codexflow",
    name: Annotated[
        str | None, typer.Option("--name", help="Deployment name; the spec's name by default.")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="An input's default for every run: `--set target=src/`."),
    ] = None,
    approve: Annotated[
        list[str] | None,
        typer.Option("--approve", "-a", help="Approve a task's gate in every run (repeatable)."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Run every agent on this model.")
    ] = None,
    workspace: Annotated[
        str | None, typer.Option("--workspace", "-w", help="Workspace as the worker sees it.")
    ] = None,
    state_dir: Annotated[
        str,
        typer.Option(
            "--state-dir", help="State dir as the worker sees it (relative: to --project)."
        ),
    ] = ".codexflow",
    project: Annotated[
        Path | None,
        typer.Option("--project", help="The worker's working directory (default: here)."),
    ] = None,
    paused: Annotated[bool, typer.Option("--paused", help="Register the schedule paused.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Register a Prefect deployment that applies SPEC (on its `schedule:` or `--cron`).

    Needs a Prefect server (`codexflow server`, then `export PREFECT_API_URL=...`). Deploying
    the same name again updates it. Runs happen on a worker: `prefect worker start --pool POOL`.
    """
    from codexflow.compiler.inputs import parse_assignments
    from codexflow.runtime.deploy import DeployError, DeployRequest, deploy_spec

    request = DeployRequest(
        spec_path=spec_path,
        name=name,
        pool=pool,
        cron=cron,
        timezone=timezone,
        inputs=dict(parse_assignments(set_ or [])),
        project_dir=project,
        state_dir=state_dir,
        workspace=workspace,
        approve=tuple(approve or ()),
        model=model,
        paused=paused,
    )
    try:
        done = deploy_spec(request)
    except DeployError as error:
        _err().print(f"[red]error:[/red] {_escape(error.message)}")
        raise typer.Exit(EXIT_INVALID) from None
    if as_json:
        print(json.dumps({**done.__dict__, "next_steps": done.next_steps}, indent=2))
        raise typer.Exit(EXIT_OK)
    console = _out()
    verb = "created" if done.created else "updated"
    console.print(f"{verb} deployment {done.full_name} ({done.deployment_id}) on {done.api_url}")
    pool_note = " (created, type process)" if done.pool_created else ""
    console.print(f"  work pool: {done.pool}{pool_note}")
    schedule = f"{done.cron} ({done.timezone})" if done.cron else "none (runs on demand)"
    console.print(f"  schedule:  {schedule}")
    console.print(f"  flow:      {done.entrypoint} in {done.project_dir}")
    console.print(f"  inputs:    {json.dumps(done.parameters['inputs'])}")
    console.print("next:")
    console.print(
        f"  PREFECT_API_URL={done.api_url} {done.next_steps[0]}   # a worker, on any machine"
    )
    console.print(f"  {done.next_steps[1]}   # a run now")


runs_app = typer.Typer(
    help="Run history: from Prefect's API when PREFECT_API_URL is set, else the run records.",
    no_args_is_help=False,
)

StateDirOption = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Where `apply` keeps its records (default .codexflow)."),
]
LocalOption = Annotated[
    bool, typer.Option("--local", help="Read the run records even when a Prefect API is set.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _use_api(local: bool) -> bool:
    return not local and bool(os.environ.get("PREFECT_API_URL"))


@runs_app.callback(invoke_without_command=True)
def runs(
    ctx: typer.Context,
    spec: Annotated[str | None, typer.Option("--spec", help="Only runs of this spec.")] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only runs in this status (succeeded, failed, running...)."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 20,
    state_dir: StateDirOption = None,
    local: LocalOption = False,
    as_json: JsonOption = False,
) -> None:
    """List past runs, newest first: status, start, duration, tokens, cost, steps."""
    ctx.obj = {"state_dir": state_dir, "local": local, "json": as_json}
    if ctx.invoked_subcommand is not None:
        return
    from codexflow.runtime import history

    where = state_dir or Path(".codexflow")
    if _use_api(local):
        found = _from_api(lambda: history.prefect_runs(spec, status, limit))
    else:
        found = history.local_runs(where, spec, status, limit)
    if as_json:
        print(json.dumps(found, indent=2, default=str))
        raise typer.Exit(EXIT_OK)
    console = _out()
    if not found:
        source = os.environ["PREFECT_API_URL"] if _use_api(local) else str(where / "runs")
        console.print(f"no runs in {source}")
        raise typer.Exit(EXIT_OK)
    for run in found:  # one plain line per run: readable at any width, easy to grep
        start = (run.get("start") or run.get("expected_start") or "")[:19].replace("T", " ")
        console.print(
            f"{run['run_id']}  {run['spec']}  {run['status']}  {start}  "
            f"{run['duration']:.1f}s  ran {run['executed']}  cached {run['cached']}  "
            f"spent {run['tokens']} tokens {_usd(run['cost_usd'])}"
            + (f"  prefect {run['flow_run_id']}" if run.get("flow_run_id") else ""),
            highlight=False,
        )


@runs_app.command("show")
def runs_show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="A run id or flow run id (a unique prefix).")],
    state_dir: StateDirOption = None,
    local: LocalOption = False,
    as_json: JsonOption = False,
) -> None:
    """One run: its state, times, what it spent, each step with its status and output."""
    from codexflow.runtime import history

    parent = ctx.obj or {}
    where = state_dir or parent.get("state_dir") or Path(".codexflow")
    local = local or parent.get("local", False)
    as_json = as_json or parent.get("json", False)
    try:
        if _use_api(local):
            run = _from_api(lambda: history.prefect_run(run_id))
        else:
            run = history.local_run(where, run_id)
    except history.RunNotFound as error:
        _err().print(f"[red]{_escape(error.message)}[/red]")
        raise typer.Exit(EXIT_INVALID) from None
    if as_json:
        print(json.dumps(run, indent=2, default=str))
        raise typer.Exit(EXIT_OK)
    _print_run(run)


def _print_run(run: dict[str, Any]) -> None:
    """The run's report (the Markdown of the Prefect artifact), then each step and its output."""
    console = _out()
    if run.get("report"):
        sys.stdout.write(run["report"].rstrip("\n") + "\n\n")
    else:  # still running, or it never got to write its report
        console.print(f"# {run['spec']} — run {run['run_id']}\n")
        console.print(f"**Status:** {run['status']}  **Duration:** {run['duration']:.2f} s")
        console.print(f"**Spent:** {run['tokens']} tokens, {_usd(run['cost_usd'])}\n")
    if run["source"] == "prefect":
        console.print(
            f"Prefect flow run {run['flow_run_id']}: {run['state']}, started {run.get('start') or '-'}"
        )
        if run.get("ui_url"):
            console.print(f"  {run['ui_url']}")
    steps = run.get("steps", [])
    if steps:
        console.print("\n## Steps" + (" (task runs)" if run["source"] == "prefect" else ""))
    for step in steps:
        cached = "  cached" if step.get("cached") else ""
        after = f"  after {', '.join(step['depends_on'])}" if step.get("depends_on") else ""
        console.print(
            f"- {step.get('name') or step.get('id')}: {step.get('status')}  "
            f"{step.get('duration', 0):.2f}s  {step.get('tokens', 0)} tokens "
            f"{_usd(step.get('cost_usd', 0))}{cached}{after}",
            highlight=False,
        )
        output = step.get("output")
        if output not in (None, ""):
            text = output if isinstance(output, str) else json.dumps(output)
            console.print("    " + _escape(text[:300].replace("\n", " ")), highlight=False)


def _from_api(read: Any) -> Any:
    """Call Prefect; a server that does not answer is a usage problem, said in one line."""
    try:
        return read()
    except Exception as exc:
        from codexflow.runtime.history import RunNotFound

        if isinstance(exc, RunNotFound):
            raise
        url = os.environ.get("PREFECT_API_URL")
        _err().print(
            f"[red]error:[/red] Prefect at {url}: {type(exc).__name__}: {_escape(str(exc))} "
            "(is it running? `codexflow server` starts one; --local reads the run records)"
        )
        raise typer.Exit(EXIT_RUN_FAILED) from None


def server(
    host: Annotated[
        str, typer.Option(help="Address to listen on (keep 127.0.0.1 unless you mean it).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the API and UI.")] = 4200,
    state_dir: Annotated[
        Path, typer.Option("--state-dir", help="Prefect's database lives under it.")
    ] = Path(".codexflow"),
) -> None:
    """Start a Prefect server with its UI, for run history, deployments and workers.

    In another shell: `export PREFECT_API_URL=http://127.0.0.1:PORT/api`, then `codexflow apply`
    shows each run's link in the UI. Ctrl-C (or SIGINT/SIGTERM) stops it and its children.
    """
    from codexflow.runtime.server import run_server

    def announce(url: str) -> None:
        _err().print(
            f"Prefect UI: {url}   (history in {(state_dir / 'prefect').resolve()})\n"
            f"use it from codexflow: export PREFECT_API_URL={url}/api"
        )

    sys.stderr.flush()
    raise typer.Exit(run_server(host, port, state_dir, announce))


def register(app: typer.Typer) -> None:
    """Add the operations commands to the `codexflow` app."""
    app.command()(deploy)
    app.add_typer(runs_app, name="runs")
    app.command()(server)


def _usd(value: object) -> str:
    """`$0.0123`, or `cost unknown` when a model has no known price (never a made-up $0)."""
    return f"${value:.4f}" if isinstance(value, int | float) else "cost unknown"
