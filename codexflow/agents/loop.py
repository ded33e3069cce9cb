"""The tool-calling loop of one agent step: call the model, run its tools, repeat until it answers."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from codexflow.agents.step_io import StepResult
from codexflow.agents.structured import (
    InvalidAnswer,
    check_schema,
    parse_and_validate,
    response_format,
)
from codexflow.compiler.plan import Step
from codexflow.errors import RunError
from codexflow.providers.types import ChatRequest, ChatResponse, ModelRoute, ToolCall

# Tool results sent back to the model are capped: one `cat` of a log can otherwise fill the
# context window and pay for it on every later turn. The full text stays in the records.
DEFAULT_RESULT_CAP = 16 * 1024  # bytes of UTF-8
TRUNCATION_MARKER = "[... truncated {dropped} bytes; full result kept in the run record]"
_ANSWER_PREVIEW = 300  # characters of a rejected answer quoted in the error


class ChatProvider(Protocol):
    """What the loop needs of a provider (codexflow.providers.Provider has this shape)."""

    def complete(self, route: ModelRoute, request: ChatRequest, *, step: str) -> ChatResponse: ...


class ToolOutcome(Protocol):
    """A tool's result as the loop reads it (codexflow.tools.context.ToolResult)."""

    @property
    def ok(self) -> bool: ...
    @property
    def content(self) -> str: ...
    @property
    def refused(self) -> bool: ...


class Toolset(Protocol):
    """The tools of one agent step (codexflow.tools builds it); `call` never raises for the
    model's mistakes (unknown tool, bad arguments): those come back as a failed outcome."""

    def schemas(self) -> list[dict[str, Any]]: ...
    def call(self, name: str, arguments: str | dict[str, Any]) -> ToolOutcome: ...
    def close(self) -> None: ...


@dataclass
class _Tally:
    """What the calls of one step cost, and the transcript kept in its records."""

    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True
    llm_calls: int = 0
    tool_calls: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)

    def charge(self, response: ChatResponse, turn: int) -> None:
        self.model = response.model or self.model
        self.prompt_tokens += response.usage.prompt_tokens
        self.completion_tokens += response.usage.completion_tokens
        self.cost_usd += response.cost_usd
        self.cost_known = self.cost_known and response.cost_known
        self.llm_calls += 1
        self.records.append(
            {
                "type": "llm_call",
                "turn": turn,
                "model": response.model,
                "content": response.content,
                "tool_calls": [
                    {"id": c.id, "name": c.name, "arguments": c.arguments}
                    for c in response.tool_calls
                ],
                "prompt_tokens": response.usage.prompt_tokens,
                "completion_tokens": response.usage.completion_tokens,
                "cost_usd": response.cost_usd,
                "attempts": response.attempts,
            }
        )

    def result(self, output: Any) -> StepResult:
        return StepResult(
            output=output,
            model=self.model,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cost_usd=self.cost_usd,
            cost_known=self.cost_known,
            llm_calls=self.llm_calls,
            tool_calls=self.tool_calls,
            records=self.records,
        )


def cap_text(text: str, limit: int) -> tuple[str, int]:
    """`text` cut to at most `limit` bytes of UTF-8 (never inside a character), with the
    truncation marker appended when anything was cut; and how many bytes were dropped."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text, 0
    kept = data[:limit].decode("utf-8", "ignore")
    dropped = len(data) - len(kept.encode("utf-8"))
    return f"{kept}\n{TRUNCATION_MARKER.format(dropped=dropped)}", dropped


def run_loop(
    provider: ChatProvider,
    route: ModelRoute,
    messages: list[dict[str, Any]],
    step: Step,
    *,
    toolset: Toolset | None = None,
    result_cap: int = DEFAULT_RESULT_CAP,
    deadline: float | None = None,
    name: str | None = None,
) -> StepResult:
    """Run the conversation that `messages` opens until the model answers without tool calls.

    A turn is one model call. More than `step.max_turns` turns fails the step. With an output
    schema, the answer is parsed and validated; an invalid one gets exactly one repair turn
    (beyond the limit if need be, so a one-turn step can still be repaired), then the step fails.
    `deadline` (time.monotonic()) is checked before each call: a step does not start a turn
    it has no time left for. `name` is what errors and the provider call the step (one fan-out
    item: "refactor[3]"); `step.id` by default.
    """
    name = name or step.id
    tally = _Tally(model=route.model)
    messages = list(messages)
    tally.records.extend({"type": "message", **message} for message in messages)
    schema = step.output_schema
    if schema is not None and (problem := check_schema(schema)) is not None:
        raise RunError(f"step {name!r}: its output schema is not a valid JSON Schema: {problem}")
    tools = toolset.schemas() if toolset is not None else []
    request_format = response_format(step.id, schema) if schema is not None else None

    limit, turn, repaired = step.max_turns, 0, False
    while True:
        if turn >= limit:
            raise RunError(
                f"step {name!r}: agent {step.agent!r} was still calling tools after "
                f"max_turns={step.max_turns} model turns; raise the agent's max_turns or narrow the task"
            )
        if deadline is not None and time.monotonic() >= deadline:
            raise RunError(
                f"step {name!r}: timed out after {step.timeout:g} s ({turn} model turns done)"
            )
        request = ChatRequest(
            messages=tuple(messages), tools=tuple(tools), response_format=request_format
        )
        response = provider.complete(route, request, step=name)
        turn += 1
        tally.charge(response, turn)

        if response.tool_calls:
            messages.append(_assistant_tool_message(response))
            # One after another, in the model's order: calls of one turn may touch the same files.
            for tool_call in response.tool_calls:
                messages.append(_run_tool(toolset, tool_call, turn, result_cap, tally))
            continue

        answer = response.content or ""
        if schema is None:
            return tally.result(answer)
        try:
            return tally.result(parse_and_validate(answer, schema))
        except InvalidAnswer as invalid:
            if repaired:
                raise RunError(
                    f"step {name!r}: the answer does not match its output schema after one "
                    f"repair turn: {invalid.message}; the answer began: {answer[:_ANSWER_PREVIEW]!r}"
                ) from None
            repaired = True
            repair = _repair_message(invalid.message)
            messages += [{"role": "assistant", "content": answer}, repair]
            tally.records.append(
                {"type": "repair", "turn": turn, "error": invalid.message, **repair}
            )
            limit = max(limit, turn + 1)


def _assistant_tool_message(response: ChatResponse) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": response.content,
        "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in response.tool_calls
        ],
    }


def _run_tool(
    toolset: Toolset | None, tool_call: ToolCall, turn: int, result_cap: int, tally: _Tally
) -> dict[str, Any]:
    """Run one tool call; the model gets the capped text, the records keep all of it."""
    if toolset is None:
        ok, refused, content = (
            False,
            True,
            f"error: this agent has no tools (asked for {tool_call.name!r})",
        )
    else:
        outcome = toolset.call(tool_call.name, tool_call.arguments)
        ok, refused = outcome.ok, outcome.refused
        content = (
            outcome.content if isinstance(outcome.content, str) else json.dumps(outcome.content)
        )
    tally.tool_calls += 1
    shown, dropped = cap_text(content, result_cap)
    tally.records.append(
        {
            "type": "tool_result",
            "turn": turn,
            "id": tool_call.id,
            "name": tool_call.name,
            "arguments": tool_call.arguments,
            "ok": ok,
            "refused": refused,
            "content": content,
            "truncated_bytes": dropped,
        }
    )
    return {"role": "tool", "tool_call_id": tool_call.id, "name": tool_call.name, "content": shown}


def _repair_message(error: str) -> dict[str, Any]:
    return {
        "role": "user",
        "content": (
            f"Your answer was rejected: {error}.\n"
            "Reply again with only the corrected JSON value. It must validate against the JSON "
            "Schema given in the answer format above; no prose around it."
        ),
    }
