"""`codexflow mcp` and `codexflow api`: the CLI commands that serve the gateway to other programs."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from codexflow.gateway import Gateway

EXIT_INVALID = 2
TOKEN_ENV = "CODEXFLOW_API_TOKEN"

SpecDir = Annotated[
    Path, typer.Option("--spec-dir", help="The specs clients may validate, plan and apply.")
]
Workspace = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Confine every run's tools to this directory (or a subdirectory a client names). "
        "Without it, runs use their spec's own workspace.",
    ),
]
StateDir = Annotated[
    Path,
    typer.Option("--state-dir", help="Cache, run records and Prefect's data (one per server)."),
]
NoPrefect = Annotated[
    bool, typer.Option("--no-prefect", help="Run without Prefect (no flow run history).")
]
Model = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Run every agent on this model (the operator's choice)."),
]
MaxRuns = Annotated[int, typer.Option("--max-runs", help="Runs of different specs at once.", min=1)]
BudgetRaise = Annotated[
    bool,
    typer.Option(
        "--allow-budget-raise",
        help="Let clients answer a budget pause with a higher limit (off: a run that reaches "
        "its budget stops cleanly, as a headless `apply` does).",
    ),
]


def _gateway(
    spec_dir: Path,
    workspace: Path | None,
    state_dir: Path,
    no_prefect: bool,
    model: str | None,
    max_runs: int,
    allow_budget_raise: bool,
) -> Gateway:
    from codexflow.gateway import Gateway, RunManager

    if not spec_dir.is_dir():
        typer.echo(f"--spec-dir: {spec_dir} is not a directory", err=True)
        raise typer.Exit(EXIT_INVALID)
    if workspace is not None and not workspace.is_dir():
        typer.echo(f"--workspace: {workspace} is not a directory", err=True)
        raise typer.Exit(EXIT_INVALID)
    if not no_prefect:
        from codexflow.runtime.prefect_env import configure_prefect

        configure_prefect(state_dir)  # one PREFECT_HOME for the whole server, before any run
    manager = RunManager(
        state_dir,
        engine="local" if no_prefect else "prefect",
        max_runs=max_runs,
        allow_budget_raise=allow_budget_raise,
    )
    return Gateway(spec_dir, manager, workspace_root=workspace, model=model)


def mcp(
    spec_dir: SpecDir = Path("specs"),
    workspace: Workspace = None,
    state_dir: StateDir = Path(".codexflow"),
    http: Annotated[
        int | None,
        typer.Option("--http", help="Serve streamable HTTP on 127.0.0.1:PORT instead of stdio."),
    ] = None,
    no_prefect: NoPrefect = False,
    model: Model = None,
    max_runs: MaxRuns = 4,
    allow_budget_raise: BudgetRaise = False,
) -> None:
    """Serve codexflow to coding agents (Claude Code, Codex CLI, any MCP client) over MCP.

    Tools: validate, plan, apply, run_status, run_cancel, approve, runs; resources: the specs
    and the run reports. Over stdio by default; `--http PORT` serves http://127.0.0.1:PORT/mcp.
    """
    from codexflow.gateway.mcp_server import serve

    gateway = _gateway(
        spec_dir, workspace, state_dir, no_prefect, model, max_runs, allow_budget_raise
    )
    if http is not None:
        typer.echo(f"codexflow MCP server: http://127.0.0.1:{http}/mcp", err=True)
    try:
        serve(gateway, http)
    except KeyboardInterrupt:
        pass
    finally:
        gateway.manager.shutdown()


def api(
    host: Annotated[
        str,
        typer.Option(
            help=f"Address to listen on. Any address but loopback needs ${TOKEN_ENV} set: "
            "every request must then carry it as a bearer token."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    spec_dir: SpecDir = Path("specs"),
    workspace: Workspace = None,
    state_dir: StateDir = Path(".codexflow"),
    no_prefect: NoPrefect = False,
    model: Model = None,
    max_runs: MaxRuns = 4,
    allow_budget_raise: BudgetRaise = False,
    print_openapi: Annotated[
        bool, typer.Option("--print-openapi", help="Print the OpenAPI document and exit.")
    ] = False,
) -> None:
    """Serve codexflow as an HTTP API (its OpenAPI document at /openapi.json).

    Runs are resources: POST /runs, GET /runs/{id}, POST /runs/{id}/cancel,
    POST /runs/{id}/approvals/{gate}, and GET /runs/{id}/events (server-sent events).
    """
    if print_openapi:
        from codexflow.gateway.http_api import openapi_document

        sys.stdout.write(openapi_document())
        return
    import uvicorn

    from codexflow.gateway.http_api import create_app, is_loopback

    token = os.environ.get(TOKEN_ENV) or None
    if not is_loopback(host) and token is None:
        typer.echo(
            f"--host {host} is not loopback: set {TOKEN_ENV} to a secret token first "
            "(clients send `Authorization: Bearer <token>`)",
            err=True,
        )
        raise typer.Exit(EXIT_INVALID)
    gateway = _gateway(
        spec_dir, workspace, state_dir, no_prefect, model, max_runs, allow_budget_raise
    )
    app = create_app(gateway, host=host, port=port, token=token)
    print(f"codexflow API: http://{host}:{port}  (OpenAPI: /openapi.json)", file=sys.stderr)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        gateway.manager.shutdown()


def register(app: typer.Typer) -> None:
    """Add `mcp` and `api` to the codexflow CLI."""
    app.command(name="mcp")(mcp)
    app.command(name="api")(api)
