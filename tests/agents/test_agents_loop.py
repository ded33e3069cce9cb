"""The tool-calling loop, through AgentExecutor with a fake provider and toolset."""

from __future__ import annotations

import json
from typing import Any

import pytest
from agent_fakes import FakeProvider, FakeToolset, make_spec, make_step, reply

from codexflow.agents.executor import run_agent_step
from codexflow.agents.loop import TRUNCATION_MARKER, cap_text
from codexflow.errors import RunError

SCHEMA = {
    "type": "object",
    "properties": {"units": {"type": "array", "items": {"type": "string"}}},
    "required": ["units"],
}


def run(provider: FakeProvider, toolset: FakeToolset | None = None, **step: Any):
    spec = make_spec(worker={"role": "coder", "tools": ["read_file"]})
    made = make_step(tools=("read_file",) if toolset else (), **step)
    factory = (lambda spec, agent, ctx: toolset) if toolset else None
    return run_agent_step(
        spec, made, "Fix the bug.", {}, provider, workspace=".", toolset_factory=factory
    )


def test_tool_results_reach_the_next_request_and_the_answer_is_the_output() -> None:
    tools = FakeToolset({"read_file": lambda path: f"contents of {path}"})
    provider = FakeProvider([reply(None, ("read_file", {"path": "a.py"})), reply("fixed a.py")])

    result = run(provider, tools)

    assert result.output == "fixed a.py"
    assert tools.calls == [("read_file", {"path": "a.py"})]
    assert tools.closed
    first, second = provider.requests
    assert [t["function"]["name"] for t in first.tools] == ["read_file"]
    assistant, tool = second.messages[-2:]
    assert assistant["tool_calls"][0]["function"] == {
        "name": "read_file",
        "arguments": '{"path": "a.py"}',
    }
    assert tool == {
        "role": "tool",
        "tool_call_id": "call_0",
        "name": "read_file",
        "content": "contents of a.py",
    }
    assert (result.llm_calls, result.tool_calls) == (2, 1)
    assert (result.prompt_tokens, result.completion_tokens) == (20, 10)
    assert result.cost_usd == pytest.approx(0.002)
    assert result.model == "fake/model"
    json.dumps(result.records)  # the runtime persists records as JSON


def test_every_tool_call_of_a_turn_runs_and_the_toolset_closes_on_failure() -> None:
    tools = FakeToolset({"read_file": lambda path: path})
    provider = FakeProvider(
        [reply(None, ("read_file", {"path": "a"}), ("nope", {})), reply("done")]
    )
    assert run(provider, tools).output == "done"
    messages = provider.requests[1].messages
    assert [m["content"] for m in messages[-2:]] == ["a", "error: unknown tool 'nope'"]

    failing = FakeToolset({"read_file": lambda path: path})
    with pytest.raises(RunError):
        run(FakeProvider([reply(None, ("read_file", {"path": "a"}))] * 3), failing, max_turns=2)
    assert failing.closed


def test_a_big_tool_result_is_capped_for_the_model_and_kept_whole_in_the_records() -> None:
    big = "x" * 40_000
    tools = FakeToolset({"read_file": lambda path: big})
    provider = FakeProvider([reply(None, ("read_file", {"path": "log"})), reply("ok")])

    result = run(provider, tools)

    sent = provider.requests[1].messages[-1]["content"]
    assert len(sent.encode()) < 17_000
    assert sent.endswith("[... truncated 23616 bytes; full result kept in the run record]")
    (record,) = [r for r in result.records if r["type"] == "tool_result"]
    assert record["content"] == big
    assert record["truncated_bytes"] == 40_000 - 16 * 1024


def test_cap_never_cuts_inside_a_character() -> None:
    shown, dropped = cap_text("é" * 10, 5)  # 2 bytes each: 5 bytes hold two and a half
    assert shown == "éé\n" + TRUNCATION_MARKER.format(dropped=16)
    assert dropped == 16
    assert cap_text("short", 5) == ("short", 0)


def test_max_turns_fails_the_step_naming_step_and_limit() -> None:
    tools = FakeToolset({"read_file": lambda path: path})
    provider = FakeProvider([reply(None, ("read_file", {"path": "a"}))] * 10)

    with pytest.raises(RunError, match=r"step 'job'.*max_turns=3"):
        run(provider, tools, max_turns=3)
    assert len(provider.requests) == 3


def test_a_model_calling_tools_it_does_not_have_is_told_so() -> None:
    provider = FakeProvider([reply(None, ("rm_rf", {})), reply("sorry")])
    result = run(provider)
    assert result.output == "sorry"
    assert provider.requests[0].tools == ()
    assert "has no tools" in provider.requests[1].messages[-1]["content"]


def test_structured_output_is_requested_parsed_and_validated() -> None:
    provider = FakeProvider([reply('```json\n{"units": ["a", "b"]}\n```')])

    result = run(provider, output_schema=SCHEMA)

    assert result.output == {"units": ["a", "b"]}
    request = provider.requests[0]
    assert request.response_format == {
        "type": "json_schema",
        "json_schema": {"name": "job", "schema": SCHEMA, "strict": False},
    }
    assert '"required": [' in request.messages[1]["content"]  # stated for models without JSON mode


def test_an_invalid_answer_gets_exactly_one_repair_turn() -> None:
    provider = FakeProvider([reply('{"units": "a"}'), reply('{"units": ["a"]}')])

    result = run(provider, output_schema=SCHEMA, max_turns=1)

    assert result.output == {"units": ["a"]}
    assert len(provider.requests) == 2
    repair = provider.requests[1].messages[-1]
    assert repair["role"] == "user"
    assert "at units: 'a' is not of type 'array'" in repair["content"]
    assert provider.requests[1].messages[-2] == {"role": "assistant", "content": '{"units": "a"}'}


def test_a_second_invalid_answer_fails_the_step_clearly() -> None:
    provider = FakeProvider(
        [reply("Sure! Here are the units."), reply('{"parts": []}'), reply("{}")]
    )

    with pytest.raises(RunError) as caught:
        run(provider, output_schema=SCHEMA)

    assert len(provider.requests) == 2
    message = caught.value.message
    assert "step 'job'" in message
    assert "after one repair turn" in message
    assert "'units' is a required property" in message
    assert "the answer began: '{\"parts\": []}'" in message


def test_an_invalid_output_schema_is_a_clear_error_before_any_call() -> None:
    provider = FakeProvider([])
    with pytest.raises(RunError, match="not a valid JSON Schema"):
        run(provider, output_schema={"type": "nonsense"})
    assert provider.requests == []
