"""Fakes for the agent tests: a scripted provider and a toolset, shaped like the real ones."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from codexflow.compiler.plan import Step
from codexflow.providers.types import ChatRequest, ChatResponse, ModelRoute, ToolCall, Usage
from codexflow.spec.models import Spec


def reply(
    content: str | None = None,
    *calls: tuple[str, dict[str, Any]],
    tokens: tuple[int, int] = (10, 5),
) -> ChatResponse:
    """A model answer: text, or tool calls given as (name, arguments)."""
    return ChatResponse(
        content=content,
        tool_calls=[
            ToolCall(id=f"call_{i}", name=name, arguments=json.dumps(args))
            for i, (name, args) in enumerate(calls)
        ],
        model="fake/model",
        usage=Usage(*tokens),
        cost_usd=0.001,
    )


@dataclass
class FakeProvider:
    """Answers from a list, in order, and keeps every request it was sent."""

    replies: list[ChatResponse | Callable[[ChatRequest], ChatResponse]]
    requests: list[ChatRequest] = field(default_factory=list)
    routes: list[ModelRoute] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)

    def complete(self, route: ModelRoute, request: ChatRequest, *, step: str) -> ChatResponse:
        self.requests.append(request)
        self.routes.append(route)
        self.steps.append(step)
        if not self.replies:
            raise AssertionError(f"unexpected model call #{len(self.requests)}")
        answer = self.replies.pop(0)
        return answer(request) if callable(answer) else answer


@dataclass(frozen=True)
class FakeResult:
    ok: bool
    content: str
    refused: bool = False


@dataclass
class FakeToolset:
    """Tools as plain functions of their parsed arguments; records calls and whether it was closed."""

    functions: dict[str, Callable[..., str]]
    calls: list[tuple[str, Any]] = field(default_factory=list)
    closed: bool = False

    def schemas(self) -> list[dict[str, Any]]:
        return [
            {
                "type": "function",
                "function": {"name": name, "description": name, "parameters": {"type": "object"}},
            }
            for name in self.functions
        ]

    def call(self, name: str, arguments: str | dict[str, Any]) -> FakeResult:
        args = json.loads(arguments) if isinstance(arguments, str) else arguments
        self.calls.append((name, args))
        if name not in self.functions:
            return FakeResult(False, f"error: unknown tool {name!r}")
        return FakeResult(True, self.functions[name](**args))

    def close(self) -> None:
        self.closed = True


def make_spec(**agents: dict[str, Any]) -> Spec:
    """A minimal valid spec with the given agents (one task for the first)."""
    agents = agents or {"worker": {"role": "coder"}}
    return Spec.model_validate(
        {
            "apiVersion": "codexflow/v1",
            "name": "test",
            "agents": agents,
            "tasks": {"job": {"agent": next(iter(agents)), "prompt": "do it"}},
        }
    )


_STEP = Step(
    id="job",
    task="job",
    kind="agent",
    agent="worker",
    model=None,
    fallbacks=(),
    prompt="do it",
    instruction="",
    depends_on=(),
    context=(),
    tools=(),
    output_schema=None,
    for_each=None,
    temperature=0.1,
    max_tokens=None,
    max_turns=5,
    retries=0,
    retry_delay=0.0,
    timeout=60.0,
    cache=True,
    is_result=True,
    group=0,
    reason="",
    hash="0",
)


def make_step(**overrides: Any) -> Step:
    return replace(_STEP, **overrides)
