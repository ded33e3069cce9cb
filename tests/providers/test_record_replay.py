"""Record exchanges against the fake server, then replay them with the server stopped and no key."""

from __future__ import annotations

from pathlib import Path

import pytest

from codexflow.errors import ProviderError
from codexflow.providers import Cassette, ChatRequest, Ledger, ModelRoute, Provider, request_key
from tests.support.openai_server import Reply, running_openai_server

KEY_ENV = "CODEXFLOW_RECORD_API_KEY"
KEY_VALUE = "sk-record-0123456789abcdef"

TOOLS = [
    {
        "type": "function",
        "function": {"name": "list_files", "parameters": {"type": "object", "properties": {}}},
    }
]
PLAN = ChatRequest(
    messages=[
        {"role": "system", "content": "You plan."},
        {"role": "user", "content": "Plan the refactor."},
    ],
    response_format={
        "type": "json_schema",
        "json_schema": {"name": "plan", "schema": {"type": "object"}},
    },
)
LOOK = ChatRequest(
    messages=[{"role": "user", "content": f"Look around. (key {KEY_VALUE})"}], tools=TOOLS
)


def record(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModelRoute, list[object]]:
    monkeypatch.setenv(KEY_ENV, KEY_VALUE)
    with running_openai_server() as server:
        server.enqueue(
            Reply(content='{"units": ["a.py", "b.py"]}', prompt_tokens=30, completion_tokens=12),
            Reply(
                content=None, tool_calls=[{"id": "call_1", "name": "list_files", "arguments": "{}"}]
            ),
        )
        route = ModelRoute(
            "openai/gpt-4o-mini", api_base=server.url, api_key_env=KEY_ENV, temperature=0.1
        )
        provider = Provider(ledger=Ledger(), cassette=Cassette(path), mode="record")
        answers: list[object] = [
            provider.complete(route, PLAN, step="plan"),
            provider.complete(route, LOOK, step="look"),
        ]
        assert len(server.chat_requests()) == 2
    monkeypatch.delenv(KEY_ENV)
    return route, answers


def test_replay_serves_the_recorded_answers_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "plan.cassette.yaml"
    route, recorded = record(path, monkeypatch)

    ledger = Ledger()
    provider = Provider(ledger=ledger, cassette=Cassette.load(path), mode="replay")
    replayed = [
        provider.complete(route, PLAN, step="plan"),
        provider.complete(route, LOOK, step="look"),
    ]

    assert replayed == recorded
    assert ledger.totals().prompt_tokens == 40 and ledger.totals().cost_known


def test_the_cassette_is_readable_and_holds_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "plan.cassette.yaml"
    record(path, monkeypatch)

    text = path.read_text()
    assert KEY_VALUE not in text
    assert "Look around. (key <redacted>)" in text
    assert "step: plan" in text and "Plan the refactor." in text
    exchanges = Cassette.load(path).exchanges
    assert [e.step for e in exchanges] == ["plan", "look"]
    # Keys are computed before redaction, so the live request still finds its answer.
    assert exchanges[1].key == request_key("openai/gpt-4o-mini", LOOK.messages, TOOLS, None, 0.1)


def test_a_changed_prompt_names_the_step_the_model_and_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "plan.cassette.yaml"
    route, _ = record(path, monkeypatch)
    provider = Provider(ledger=Ledger(), cassette=Cassette.load(path), mode="replay")
    changed = ChatRequest(messages=[{"role": "user", "content": "Plan the refactor, quickly."}])

    with pytest.raises(ProviderError) as error:
        provider.complete(route, changed, step="plan")

    assert error.value.message == (
        f"no recorded exchange for step 'plan' (model openai/gpt-4o-mini); the prompt or parameters "
        f"changed since {path} was recorded — re-record with --record"
    )


def test_a_changed_temperature_is_a_different_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "plan.cassette.yaml"
    route, _ = record(path, monkeypatch)
    provider = Provider(ledger=Ledger(), cassette=Cassette.load(path), mode="replay")

    with pytest.raises(ProviderError, match="no recorded exchange"):
        provider.complete(ModelRoute(route.model, temperature=0.7), PLAN, step="plan")


def test_a_missing_cassette_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="does not exist; record it first"):
        Cassette.load(tmp_path / "nope.yaml")


def test_the_specs_own_key_variable_is_redacted_whatever_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`api_key_env: LOCAL_LLM_KEY` looks like no secret by its name; its value is one anyway:
    in a prompt (a tool read it from a file), in an answer, and in the request headers."""
    key = "sk-local-5f0e1d2c3b4a"
    monkeypatch.setenv("LOCAL_LLM_KEY", key)
    path = tmp_path / "local.cassette.yaml"
    asked = ChatRequest(messages=[{"role": "user", "content": f"The .env file says KEY={key}"}])
    with running_openai_server() as server:
        server.enqueue(
            Reply(
                content=f"Your key is {key}.",
                tool_calls=[{"name": "list_files", "arguments": f'{{"note": "{key}"}}'}],
            )
        )
        route = ModelRoute("openai/local", api_base=server.url, api_key_env="LOCAL_LLM_KEY")
        answer = Provider(ledger=Ledger(), cassette=Cassette(path), mode="record").complete(
            route, asked, step="look"
        )
        (request,) = server.chat_requests()
    assert request.headers.get("Authorization") == f"Bearer {key}"  # it was the key in use
    # Nothing the provider hands back carries it: not to outputs, records or later prompts.
    assert answer.content == "Your key is <redacted>."
    assert answer.tool_calls[0].arguments == '{"note": "<redacted>"}'
    text = path.read_text()
    assert key not in text
    assert "KEY=<redacted>" in text and "Your key is <redacted>." in text
