"""The HTTP API's request and response bodies: bounded inputs, and the OpenAPI document's shapes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


SpecName = Annotated[
    str | None,
    Field(description="A spec's name in the server's spec dir.", min_length=1, max_length=200),
]
SpecText = Annotated[
    str | None, Field(description="A spec's YAML text.", max_length=4 * 1024 * 1024)
]
InputValues = Annotated[
    dict[str, Any] | None,
    Field(description="Values for the spec's declared inputs.", max_length=100),
]


class ValidateRequest(_Body):
    spec: SpecName = None
    text: SpecText = None


class PlanRequest(ValidateRequest):
    inputs: InputValues = None


class RunRequest(_Body):
    spec: str = Field(description="A spec's name in the spec dir.", min_length=1, max_length=200)
    inputs: InputValues = None
    approve: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list,
        description="Gates (task ids) and tools approved ahead.",
        max_length=100,
    )
    fresh: bool = Field(False, description="Ignore cached results.")
    workspace: str | None = Field(
        None, description="A directory beneath the server's --workspace root.", max_length=1000
    )


class ApprovalRequest(_Body):
    approved: bool = Field(True, description="Yes or no.")
    limit: float | None = Field(None, description="A budget pause: the new limit.", gt=0)


class IssueView(BaseModel):
    path: str
    line: int
    col: int
    loc: str
    message: str
    hint: str
    text: str = Field(description="`file:line:col: where: what (how to fix)`")


class ValidateResult(BaseModel):
    valid: bool
    name: str | None = None
    issues: list[IssueView]


class ErrorBody(BaseModel):
    error: str
    issues: list[IssueView] = Field(default_factory=list)


class Spent(BaseModel):
    tokens: int
    usd: float | None = Field(description="US dollars spent; null when a model has no known price")


class Approval(BaseModel):
    id: str
    gate: str
    kind: Literal["gate", "tool", "budget"]
    question: str
    asked_at: float
    limit_kind: str | None = None
    spent: float | None = None
    limit: float | None = None


class RunView(BaseModel):
    run_id: str
    spec: str
    state: str = Field(
        description="queued, running, succeeded, failed, denied, interrupted, cancelled, error"
    )
    final: bool
    reason: str
    created: float | None = None
    started: float | None = None
    finished: float | None = None
    steps_total: int
    steps_done: int
    running: list[str] = Field(default_factory=list)
    spent: Spent
    pending_approvals: list[Approval] = Field(default_factory=list)
    prefect_flow_run_id: str | None = None
    ui_url: str | None = None
    last_event: int = 0
    steps: list[dict[str, Any]] | None = None
    outputs: dict[str, Any] | None = None


class RunList(BaseModel):
    runs: list[RunView]


class SpecInfo(BaseModel):
    name: str
    uri: str
    valid: bool
    description: str | None = None
    plan: str | None = None
    issues: int | None = None


class SpecList(BaseModel):
    specs: list[SpecInfo]


class ApprovalResult(BaseModel):
    run_id: str
    approved: bool
    answered: Approval


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token"},
    404: {"model": ErrorBody, "description": "No such spec or run"},
    413: {"model": ErrorBody, "description": "Request body too large"},
    422: {"model": ErrorBody, "description": "Invalid request or spec (issues with line:col)"},
}


class MemoryEntry(BaseModel):
    spec: str
    namespace: str = Field(description="The spec's memory namespace, as its agents see it.")
    key: str
    found: bool
    value: Any = Field(None, description="The stored value (None when not found).")


class MemoryHit(BaseModel):
    key: str
    value: Any
    score: float = Field(description="Cosine similarity to the query (1 is the same text).")


class MemorySearch(BaseModel):
    spec: str
    namespace: str
    hits: list[MemoryHit] = Field(description="Best first.")
