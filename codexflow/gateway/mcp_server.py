"""`codexflow mcp`: the gateway's verbs as an MCP server (official SDK), over stdio or HTTP.

Tools: validate, plan, apply, run_status, run_cancel, approve, runs. Resources: each spec of the
spec dir (`codexflow://specs/<name>`) and each run's report (`codexflow://runs/<id>/report`).
`apply` returns a run id at once; `run_status` with `wait_seconds` waits (bounded) for the run to
move and sends MCP progress notifications when the client gave a progress token.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resources import FunctionResource
from pydantic import Field

from codexflow.errors import CodexflowError, SpecError
from codexflow.gateway.runs import GatewayError
from codexflow.gateway.service import Gateway

MAX_WAIT_SECONDS = 60.0  # one run_status call never holds a run for long
MAX_BODY_BYTES = 5 * 1024 * 1024  # streamable HTTP: a spec (4 MiB) and its envelope

T = TypeVar("T")

INSTRUCTIONS = """\
codexflow runs validated, planned, budgeted multi-agent swarms described in YAML specs.
Typical use: `validate` or `plan` a spec, `apply` it (returns a run id at once), then poll
`run_status` (with wait_seconds to wait for progress) until `final` is true. A run waiting at an
approval gate lists it in `pending_approvals`: answer it with `approve`. `run_cancel` stops a
run cleanly. Specs, budgets, tools and the sandbox are fixed by the server; a client cannot
widen them."""


def _call(verb: Callable[[], T]) -> T:
    """Run a verb; what the user must fix comes back as a tool error (line:col for specs)."""
    try:
        return verb()
    except SpecError as error:
        raise ToolError("\n".join(issue.render() for issue in error.issues)) from None
    except CodexflowError as error:
        raise ToolError(error.message) from None


SpecName = Annotated[
    str | None, Field(description="A spec's name in the server's spec dir (see `runs`/resources).")
]
SpecText = Annotated[
    str | None,
    Field(description="The YAML text of a spec (validate/plan only).", max_length=4 << 20),
]
Inputs = Annotated[
    dict[str, Any] | None, Field(description="Values for the spec's declared `inputs`.")
]


def build_server(gateway: Gateway) -> MCPServer:
    """An MCPServer exposing `gateway`'s verbs (not started)."""
    server: MCPServer = MCPServer(
        "codexflow", instructions=INSTRUCTIONS, version=_version(), log_level="WARNING"
    )

    @server.tool()
    def validate(spec: SpecName = None, text: SpecText = None) -> dict[str, Any]:
        """Check a spec (by name, or its YAML text): every problem as `file:line:col: where: what`."""
        return _call(lambda: gateway.validate(text=text, spec=spec))

    @server.tool()
    def plan(spec: SpecName = None, text: SpecText = None, inputs: Inputs = None) -> dict[str, Any]:
        """Compile a spec: its steps, dependencies, cached steps and a cost range. No model call."""
        return _call(lambda: gateway.plan(text=text, spec=spec, inputs=inputs))

    @server.tool()
    def apply(
        spec: Annotated[str, Field(description="The spec's name in the server's spec dir.")],
        inputs: Inputs = None,
        approve: Annotated[
            list[str] | None,
            Field(description="Gates (task ids) and tools approved ahead of time.", max_length=100),
        ] = None,
        fresh: Annotated[bool, Field(description="Ignore cached results.")] = False,
        workspace: Annotated[
            str | None,
            Field(description="A directory beneath the server's --workspace root for the tools."),
        ] = None,
    ) -> dict[str, Any]:
        """Start a run in the background and return its id at once; follow it with run_status."""
        return _call(lambda: gateway.apply(spec, inputs, approve, fresh, workspace))

    @server.tool()
    async def run_status(
        run_id: str,
        ctx: Context,
        wait_seconds: Annotated[
            float,
            Field(
                description="Wait up to this long (max 60 s) for the run to end or to ask "
                "something; progress notifications are sent meanwhile.",
                ge=0,
                le=MAX_WAIT_SECONDS,
            ),
        ] = 0.0,
        outputs: Annotated[bool, Field(description="Include the step outputs so far.")] = True,
    ) -> dict[str, Any]:
        """A run's state, steps done/total, what it spent, pending approvals, outputs so far."""
        view = _call(lambda: gateway.status(run_id, outputs=False))
        if wait_seconds > 0:
            await _report(ctx, view, view["state"])  # where it stands, then as it moves
            if not view["final"] and not view["pending_approvals"]:
                await _wait(gateway, run_id, view["last_event"], wait_seconds, ctx)
        return _call(lambda: gateway.status(run_id, outputs=outputs))

    @server.tool()
    def run_cancel(run_id: str) -> dict[str, Any]:
        """Stop a run cleanly (like Ctrl-C): nothing new starts, pending approvals are denied."""
        return _call(lambda: gateway.cancel(run_id))

    @server.tool()
    def approve(
        run_id: str,
        gate: Annotated[
            str,
            Field(description="The pending approval's id or gate (task id, tool:<name>, budget)."),
        ],
        approved: bool = True,
        limit: Annotated[
            float | None, Field(description="A budget pause: the new limit.", gt=0)
        ] = None,
    ) -> dict[str, Any]:
        """Answer a run's pending approval gate, tool approval or budget pause."""
        return _call(lambda: gateway.approve(run_id, gate, approved, limit))

    @server.tool()
    def memory_get(spec: str, key: str) -> dict[str, Any]:
        """An entry of a spec's lasting shared memory (what its agents stored with memory_store)."""
        return _call(lambda: gateway.memory_get(spec, key))

    @server.tool()
    def memory_search(spec: str, query: str, limit: int = 5) -> dict[str, Any]:
        """The entries of a spec's shared memory nearest in meaning to `query`, best first."""
        return _call(lambda: gateway.memory_search(spec, query, limit))

    @server.tool()
    def runs() -> dict[str, Any]:
        """The runs of this server (newest first) and older ones recorded in its state dir."""
        return {"runs": _call(gateway.runs), "specs": _call(gateway.specs)}

    for name in gateway.spec_names():
        server.add_resource(
            FunctionResource(
                uri=f"codexflow://specs/{name}",
                name=name,
                description=f"The spec `{name}` (YAML)",
                mime_type="application/yaml",
                fn=lambda name=name: gateway.spec_text(name),
            )
        )

    @server.resource("codexflow://specs/{name}", mime_type="application/yaml")
    def spec_resource(name: str) -> str:
        """A spec of the spec dir, as YAML."""
        return _call(lambda: gateway.spec_text(name))

    @server.resource("codexflow://runs/{run_id}/report", mime_type="text/markdown")
    def report_resource(run_id: str) -> str:
        """A finished run's report (Markdown): status, per-step time, tokens and cost."""
        return _call(lambda: gateway.report(run_id))

    @server.resource("codexflow://runs", mime_type="application/json")
    def runs_resource() -> str:
        """The runs of this server, as JSON."""
        return json.dumps(gateway.runs())

    return server


async def _wait(gateway: Gateway, run_id: str, since: int, seconds: float, ctx: Context) -> None:
    """Follow a run's events for up to `seconds`, reporting progress; stop early when it ends or
    asks a question."""
    with anyio.move_on_after(seconds):
        cursor = since
        while True:
            events = await anyio.to_thread.run_sync(
                gateway.manager.wait, run_id, cursor, 5.0, abandon_on_cancel=True
            )
            if not events:
                if gateway.manager.get(run_id).final:
                    return
                continue
            cursor = events[-1]["seq"]
            view = gateway.status(run_id, outputs=False)
            last = events[-1]
            message = last["event"].removeprefix("codexflow.")
            if last["step_id"]:
                message += f" {last['step_id']}"
            await _report(ctx, view, message)
            if view["final"] or view["pending_approvals"]:
                return


async def _report(ctx: Context, view: dict[str, Any], message: str) -> None:
    """A progress notification (a no-op unless the client sent a progress token)."""
    await ctx.report_progress(view["steps_done"], view["steps_total"] or None, message)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("codexflow")
    except PackageNotFoundError:
        return "0"


def serve(gateway: Gateway, http_port: int | None = None) -> None:
    """Serve over stdio, or streamable HTTP on 127.0.0.1:`http_port` (never another address:
    the MCP endpoint has no authentication of its own)."""
    server = build_server(gateway)
    if http_port is None:
        server.run("stdio")
        return
    import uvicorn

    app = server.streamable_http_app(max_request_body_size=MAX_BODY_BYTES, host="127.0.0.1")
    # Uvicorn's start-up line ("Uvicorn running on ...") says when clients may connect.
    config = uvicorn.Config(
        app, host="127.0.0.1", port=http_port, log_level="info", access_log=False
    )
    uvicorn.Server(config).run()


__all__ = ["GatewayError", "build_server", "serve"]
