"""`codexflow api`: the gateway's verbs as an HTTP API (FastAPI), runs as resources, SSE progress.

Guards, outermost first (one ASGI middleware): the bearer token (required on any address but
loopback, checked on every request when set), the Host header on a loopback bind (a web page
reached through DNS rebinding cannot drive the API), JSON-only request bodies, and a bound on
every request body, counted as it streams in (a missing or lying Content-Length does not help).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Body, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from codexflow.errors import Issue, SpecError
from codexflow.gateway.http_models import (
    ERRORS,
    ApprovalRequest,
    ApprovalResult,
    ErrorBody,
    MemoryEntry,
    MemorySearch,
    PlanRequest,
    RunList,
    RunRequest,
    RunView,
    SpecList,
    ValidateRequest,
    ValidateResult,
)
from codexflow.gateway.runs import GatewayError
from codexflow.gateway.service import Gateway, issue_view

MAX_BODY_BYTES = 5 * 1024 * 1024  # a spec (4 MiB at most) and its JSON envelope
MAX_STREAMS = 16  # SSE streams at once (each waits on a worker thread)
STREAM_WAIT = 10.0  # seconds between keep-alive comments on a quiet stream
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}

STATUS = {"not_found": 404, "invalid": 422, "conflict": 409, "busy": 429, "forbidden": 403}


def is_loopback(host: str) -> bool:
    """Only 127.0.0.1, ::1 and localhost count: any other address (0.0.0.0, a LAN address,
    even 127.0.0.2) may be reached by others and needs the token."""
    return host.strip("[]").lower() in LOOPBACK_NAMES


# -- the guard ---------------------------------------------------------------------------------
class Guard:
    """Token, Host, content type and body size, before FastAPI sees the request."""

    def __init__(self, app: ASGIApp, *, token: str | None, hosts: set[str] | None, limit: int):
        self.app, self.token, self.hosts, self.limit = app, token, hosts, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.token is not None:
            given = headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                value.strip().encode(), self.token.encode()
            ):
                await _refuse(
                    send, 401, "a bearer token is required", {"www-authenticate": "Bearer"}
                )
                return
        if self.hosts is not None and headers.get("host", "").lower() not in self.hosts:
            await _refuse(send, 421, "unexpected Host header (this API serves loopback only)")
            return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _refuse(send, 413, f"request bodies are limited to {self.limit} bytes")
            return
        # Read the body here, up to the limit (FastAPI would turn an error raised while it
        # reads into a 400), then hand it on in one piece.
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await _refuse(send, 413, f"request bodies are limited to {self.limit} bytes")
                return
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if body and media != "application/json":
            await _refuse(send, 415, "request bodies are JSON (Content-Type: application/json)")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _refuse(
    send: Send, status: int, message: str, extra: dict[str, str] | None = None
) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _allowed_hosts(host: str, port: int) -> set[str] | None:
    if not is_loopback(host):
        return None  # the token protects it; names and proxies vary
    names = {"localhost", "127.0.0.1", "[::1]"}
    return {f"{name}:{port}" for name in names} | names


# -- the app -----------------------------------------------------------------------------------
def create_app(
    gateway: Gateway,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    max_body: int = MAX_BODY_BYTES,
) -> Any:
    """The ASGI app: FastAPI routes behind the guard. Refuses a non-loopback host without a token."""
    if not is_loopback(host) and not token:
        raise ValueError(f"{host} is not loopback: a bearer token is required")
    api = build_api(gateway)
    return Guard(api, token=token, hosts=_allowed_hosts(host, port), limit=max_body)


def build_api(gateway: Gateway) -> FastAPI:
    """The FastAPI routes (unguarded: `create_app` puts the guard in front)."""
    api = FastAPI(
        title="codexflow",
        version=_version(),
        description="Validate, plan and apply codexflow specs; follow, approve and cancel runs.",
        # Swagger UI and ReDoc load their scripts from a CDN: nothing here reaches the network.
        docs_url=None,
        redoc_url=None,
    )
    streams = anyio.Semaphore(MAX_STREAMS)

    @api.exception_handler(GatewayError)
    async def gateway_error(_: Request, exc: GatewayError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=STATUS.get(exc.kind, 400))

    @api.exception_handler(SpecError)
    async def spec_error(_: Request, exc: SpecError) -> JSONResponse:
        issues = [issue_view(issue) for issue in exc.issues]
        return JSONResponse({"error": "invalid spec or inputs", "issues": issues}, status_code=422)

    @api.exception_handler(RequestValidationError)
    async def request_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        issues = []
        for error in exc.errors():
            loc = ".".join(str(part) for part in error.get("loc", ()))
            issue = Issue("<request>", 0, 0, loc, str(error.get("msg", "invalid")))
            issues.append(issue_view(issue))
        return JSONResponse({"error": "invalid request", "issues": issues}, status_code=422)

    @api.get("/health", tags=["server"])
    def health() -> dict[str, Any]:
        """The server answers."""
        return {"ok": True, "version": _version()}

    @api.get("/specs", tags=["specs"], responses=ERRORS)
    def list_specs() -> SpecList:
        """The specs of the server's spec dir."""
        return SpecList.model_validate({"specs": gateway.specs()})

    @api.get(
        "/specs/{name}",
        tags=["specs"],
        responses={
            **ERRORS,
            200: {"content": {"application/yaml": {"schema": {"type": "string"}}}},
        },
        response_class=PlainTextResponse,
    )
    def get_spec(name: Annotated[str, Path(max_length=200)]) -> PlainTextResponse:
        """A spec's YAML text."""
        return PlainTextResponse(gateway.spec_text(name), media_type="application/yaml")

    @api.get("/specs/{name}/memory/{key}", tags=["memory"], responses=ERRORS)
    def memory_get(
        name: Annotated[str, Path(max_length=200)], key: Annotated[str, Path(max_length=500)]
    ) -> MemoryEntry:
        """An entry of a spec's lasting shared memory (what its agents stored with
        memory_store), from where that spec's runs under this server keep it."""
        return MemoryEntry.model_validate(gateway.memory_get(name, key))

    @api.get("/specs/{name}/memory", tags=["memory"], responses=ERRORS)
    def memory_search(
        name: Annotated[str, Path(max_length=200)],
        query: Annotated[str, Query(min_length=1, max_length=65536, description="What to find.")],
        limit: Annotated[int, Query(ge=1, le=50, description="At most this many hits.")] = 5,
    ) -> MemorySearch:
        """The entries of a spec's shared memory nearest in meaning to `query`, best first."""
        return MemorySearch.model_validate(gateway.memory_search(name, query, limit))

    @api.post("/validate", tags=["specs"], responses=ERRORS)
    def validate(request: ValidateRequest) -> ValidateResult:
        """Check a spec (by name or text): every problem with its line and column."""
        return ValidateResult.model_validate(gateway.validate(text=request.text, spec=request.spec))

    @api.post("/plan", tags=["specs"], responses=ERRORS)
    def plan(request: PlanRequest) -> dict[str, Any]:
        """The compiled plan: steps, dependencies, cached steps, a cost range. No model call."""
        return gateway.plan(text=request.text, spec=request.spec, inputs=request.inputs)

    @api.post("/runs", tags=["runs"], status_code=202, responses={**ERRORS, 403: ERRORS[404]})
    def start_run(request: RunRequest) -> RunView:
        """Start a run in the background; returns at once with its id."""
        view = gateway.apply(
            request.spec, request.inputs, request.approve, request.fresh, request.workspace
        )
        return RunView.model_validate(view)

    @api.get("/runs", tags=["runs"], responses=ERRORS)
    def list_runs() -> RunList:
        """This server's runs, newest first, then older ones recorded in its state dir."""
        return RunList.model_validate({"runs": gateway.runs()})

    @api.get("/runs/{run_id}", tags=["runs"], responses=ERRORS)
    def get_run(
        run_id: Annotated[str, Path(max_length=100)],
        outputs: Annotated[bool, Query(description="Include step outputs.")] = True,
    ) -> RunView:
        """A run's state, steps done/total, what it spent, pending approvals and outputs."""
        return RunView.model_validate(gateway.status(run_id, outputs=outputs))

    @api.post("/runs/{run_id}/cancel", tags=["runs"], responses=ERRORS)
    def cancel_run(run_id: Annotated[str, Path(max_length=100)]) -> RunView:
        """Stop a run cleanly: nothing new starts, pending approvals are denied."""
        return RunView.model_validate(gateway.cancel(run_id))

    @api.post("/runs/{run_id}/approvals/{gate}", tags=["runs"], responses=ERRORS)
    def answer_approval(
        run_id: Annotated[str, Path(max_length=100)],
        gate: Annotated[
            str, Path(max_length=200, description="Approval id, task id, tool:<name> or budget")
        ],
        answer: Annotated[ApprovalRequest | None, Body()] = None,
    ) -> ApprovalResult:
        """Answer a pending approval gate, tool approval or budget pause."""
        answer = answer or ApprovalRequest()
        return ApprovalResult.model_validate(
            gateway.approve(run_id, gate, answer.approved, answer.limit)
        )

    @api.get(
        "/runs/{run_id}/report",
        tags=["runs"],
        responses={**ERRORS, 200: {"content": {"text/markdown": {"schema": {"type": "string"}}}}},
        response_class=PlainTextResponse,
    )
    def get_report(run_id: Annotated[str, Path(max_length=100)]) -> PlainTextResponse:
        """A finished run's report (Markdown)."""
        return PlainTextResponse(gateway.report(run_id), media_type="text/markdown")

    @api.get(
        "/runs/{run_id}/events",
        tags=["runs"],
        responses={
            **ERRORS,
            429: {"model": ErrorBody, "description": "Too many event streams"},
            200: {
                "description": "Server-sent events: `id` is the event's sequence number, `event` "
                "its name (codexflow.step.finished, ...), `data` its JSON. Ends with the run.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
        },
        response_class=StreamingResponse,
    )
    async def run_events(
        request: Request,
        run_id: Annotated[str, Path(max_length=100)],
        since: Annotated[
            int, Query(ge=0, description="Only events after this sequence number.")
        ] = 0,
    ) -> StreamingResponse:
        """Progress as server-sent events, from `since` (or Last-Event-ID) to the run's end."""
        gateway.manager.get(run_id)  # 404 before the stream starts
        last = request.headers.get("last-event-id", "")
        cursor = int(last) if last.isdigit() else since
        if streams.value == 0:
            raise GatewayError("busy", f"at most {MAX_STREAMS} event streams at once")
        return StreamingResponse(
            _stream(gateway, run_id, cursor, streams),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    return api


async def _stream(
    gateway: Gateway, run_id: str, cursor: int, streams: anyio.Semaphore
) -> AsyncIterator[bytes]:
    async with streams:
        while True:
            events = await anyio.to_thread.run_sync(
                gateway.manager.wait, run_id, cursor, STREAM_WAIT, abandon_on_cancel=True
            )
            for event in events:
                cursor = event["seq"]
                data = json.dumps(event, default=repr)
                yield f"id: {cursor}\nevent: {event['event']}\ndata: {data}\n\n".encode()
            if not events:
                if gateway.manager.get(run_id).final:
                    return
                yield b": keep-alive\n\n"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("codexflow")
    except PackageNotFoundError:
        return "0"


def openapi_document() -> str:
    """The OpenAPI document as checked in at docs/openapi.json (independent of any server)."""
    from pathlib import Path as FilePath

    from codexflow.gateway.runs import RunManager

    gateway = Gateway(FilePath("specs"), RunManager(FilePath(".codexflow"), engine="local"))
    document = build_api(gateway).openapi()
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


__all__ = ["create_app", "is_loopback", "openapi_document"]
