"""The agent loop through the real Provider and litellm, against an OpenAI-protocol server on 127.0.0.1."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from agent_fakes import FakeProvider, FakeToolset, make_step, reply

from codexflow.agents.executor import run_agent_step
from codexflow.providers.provider import Provider
from codexflow.spec.models import Spec

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # `tests.support` lives at the repository root
    sys.path.insert(0, _ROOT)

from tests.support.openai_server import Reply, running_openai_server  # noqa: E402

SCHEMA = {"type": "object", "properties": {"files": {"type": "array"}}, "required": ["files"]}


def spec_for(url: str) -> Spec:
    return Spec.model_validate(
        {
            "apiVersion": "codexflow/v1",
            "name": "integration",
            # The `openai` provider pointed at the local server: litellm's OpenAI client path.
            "providers": {"openai": {"api_base": url, "api_key_env": "CODEXFLOW_AGENTS_TEST_KEY"}},
            "agents": {
                "worker": {"role": "coder", "tools": ["read_file"], "model": "openai/gpt-test"}
            },
            "tasks": {"job": {"agent": "worker", "prompt": "x"}},
        }
    )


def test_a_tool_conversation_and_a_repaired_structured_answer_over_http(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CODEXFLOW_AGENTS_TEST_KEY", "sk-test-agents")
    tools = FakeToolset({"read_file": lambda path: f"TOOL-RESULT-{path}"})
    with running_openai_server() as server:
        server.enqueue(
            Reply(
                content=None,
                tool_calls=[{"id": "c1", "name": "read_file", "arguments": '{"path": "a.py"}'}],
            ),
            Reply(
                content='{"file": "a.py"}', prompt_tokens=30, completion_tokens=7
            ),  # invalid: repaired
            Reply(
                content='```json\n{"files": ["a.py"]}\n```', prompt_tokens=40, completion_tokens=9
            ),
        )
        result = run_agent_step(
            spec_for(server.url),
            make_step(tools=("read_file",), output_schema=SCHEMA, retries=0),
            "List the files you changed.",
            {},
            Provider(),
            workspace=".",
            toolset_factory=lambda *_: tools,
        )
        bodies = [r.json for r in server.chat_requests()]

    assert result.output == {"files": ["a.py"]}
    assert len(bodies) == 3
    assert bodies[1]["messages"][-1]["content"] == "TOOL-RESULT-a.py"
    assert bodies[1]["messages"][-1]["tool_call_id"] == "c1"
    assert "'files' is a required property" in bodies[2]["messages"][-1]["content"]
    assert bodies[0]["response_format"]["json_schema"]["schema"] == SCHEMA
    assert [t["function"]["name"] for t in bodies[0]["tools"]] == ["read_file"]
    assert (result.llm_calls, result.tool_calls) == (3, 1)
    assert (result.prompt_tokens, result.completion_tokens) == (10 + 30 + 40, 5 + 7 + 9)
    json.dumps(result.records)


def test_real_tools_read_a_workspace_file_for_the_model(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("the answer is 42\n", encoding="utf-8")
    spec = Spec.model_validate(
        {
            "apiVersion": "codexflow/v1",
            "name": "tools",
            "agents": {"worker": {"role": "coder", "tools": ["read_file"]}},
            "tasks": {"job": {"agent": "worker", "prompt": "x"}},
        }
    )
    provider = FakeProvider(
        [
            reply(
                None, ("read_file", {"path": "notes.txt"}), ("read_file", {"path": "../etc/passwd"})
            ),
            reply("42"),
        ]
    )

    result = run_agent_step(
        spec,
        make_step(tools=("read_file",)),
        "What is the answer?",
        {},
        provider,
        workspace=tmp_path,
    )

    assert result.output == "42"
    assert [t["function"]["name"] for t in provider.requests[0].tools] == ["read_file"]
    inside, outside = provider.requests[1].messages[-2:]
    assert "the answer is 42" in inside["content"]
    assert "root:" not in outside["content"]
    results = [r for r in result.records if r["type"] == "tool_result"]
    assert [r["ok"] for r in results] == [True, False]
