"""Provider.complete against a real OpenAI-protocol server on 127.0.0.1: figures from its request log."""

from __future__ import annotations

import json
from typing import Any

import pytest

from codexflow.errors import BudgetExceeded, ProviderError
from codexflow.providers import Breakers, ChatRequest, Ledger, ModelRoute, Provider
from codexflow.providers.ledger import worst_prompt
from codexflow.providers.pricing import count_prompt
from tests.support.openai_server import OpenAIServer, Reply

HELLO = ChatRequest(messages=[{"role": "user", "content": "hello"}])


def route(
    server: OpenAIServer, key_env: str, model: str = "openai/test-model", **overrides: Any
) -> ModelRoute:
    settings: dict[str, Any] = {
        "api_base": server.url,
        "api_key_env": key_env,
        "retry_delay": 0.01,
        "timeout": 10.0,
    }
    return ModelRoute(model, **(settings | overrides))


def test_tool_call_and_tool_result_follow_up(openai_server: OpenAIServer, api_key: str) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "read_file",
                "description": "Read a file.",
                "parameters": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}},
                    "required": ["path"],
                },
            },
        }
    ]
    openai_server.enqueue(
        Reply(
            content=None,
            tool_calls=[{"id": "call_7", "name": "read_file", "arguments": '{"path": "a.py"}'}],
        ),
        Reply(content="a.py prints 1"),
    )
    provider = Provider(ledger=Ledger())
    messages: list[dict[str, Any]] = [{"role": "user", "content": "What does a.py do?"}]

    first = provider.complete(
        route(openai_server, api_key), ChatRequest(messages, tools), step="read"
    )

    assert first.content is None
    assert [(c.id, c.name, json.loads(c.arguments)) for c in first.tool_calls] == [
        ("call_7", "read_file", {"path": "a.py"})
    ]
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_7",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "a.py"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_7", "content": "print(1)"},
    ]
    second = provider.complete(
        route(openai_server, api_key), ChatRequest(messages, tools), step="read"
    )

    assert second.content == "a.py prints 1"
    logged = openai_server.chat_requests()
    assert len(logged) == 2
    assert (
        logged[0].json is not None and logged[0].json["tools"][0]["function"]["name"] == "read_file"
    )
    assert logged[1].json is not None
    assert logged[1].json["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_7",
        "content": "print(1)",
    }
    assert logged[1].json["messages"][-2]["tool_calls"][0]["id"] == "call_7"
    assert logged[0].headers["Authorization"] == "Bearer sk-test-0123456789abcdef"


def test_retry_after_is_waited_for(openai_server: OpenAIServer, api_key: str) -> None:
    openai_server.enqueue(Reply(status=429, headers={"Retry-After": "2"}))
    provider = Provider(ledger=Ledger())

    response = provider.complete(route(openai_server, api_key), HELLO, step="s")

    first, second = openai_server.chat_requests()
    assert second.time - first.time >= 2.0
    assert response.attempts == 2 and response.content == "ok"


def test_persistent_503_costs_retries_plus_one_requests(
    openai_server: OpenAIServer, api_key: str
) -> None:
    openai_server.default = Reply(status=503)
    provider = Provider(ledger=Ledger())

    with pytest.raises(
        ProviderError,
        match=r"step 's': no model answered .*openai/test-model: 4 attempt\(s\), last: 503",
    ):
        provider.complete(route(openai_server, api_key, retries=3), HELLO, step="s")

    assert len(openai_server.chat_requests()) == 4
    assert provider.ledger.totals().calls == 0


def test_401_fails_after_exactly_one_request(openai_server: OpenAIServer, api_key: str) -> None:
    openai_server.default = Reply(status=401)
    provider = Provider(ledger=Ledger())

    with pytest.raises(ProviderError, match="401"):
        provider.complete(route(openai_server, api_key, retries=3), HELLO, step="s")

    assert len(openai_server.chat_requests()) == 1


def test_400_bad_request_is_not_retried_nor_passed_to_fallbacks(
    openai_server: OpenAIServer, api_key: str
) -> None:
    openai_server.default = Reply(status=400)
    provider = Provider(ledger=Ledger())

    with pytest.raises(ProviderError, match="refused the request"):
        provider.complete(
            route(openai_server, api_key, fallbacks=("openai/other",)), HELLO, step="s"
        )

    assert len(openai_server.chat_requests()) == 1


def test_fallback_takes_over_after_the_primary_is_exhausted(
    openai_server: OpenAIServer, api_key: str
) -> None:
    openai_server.default = lambda request: (
        Reply(status=503) if request["model"] == "primary" else Reply(content="from backup")
    )
    provider = Provider(ledger=Ledger())

    response = provider.complete(
        route(openai_server, api_key, "openai/primary", fallbacks=("openai/backup",), retries=2),
        HELLO,
        step="s",
    )

    assert response.content == "from backup"
    assert response.model == "openai/backup"
    assert response.attempts == 4
    assert [r.json["model"] for r in openai_server.chat_requests() if r.json] == ["primary"] * 3 + [
        "backup"
    ]


def test_a_hung_response_is_cut_at_the_timeout(openai_server: OpenAIServer, api_key: str) -> None:
    openai_server.default = Reply(delay=5.0)
    provider = Provider(ledger=Ledger())

    # Waiting out the server's 5 s would have got its answer: an error means the call was cut.
    with pytest.raises(ProviderError, match=r"test-model.*[Tt]imed? ?out") as raised:
        provider.complete(route(openai_server, api_key, timeout=0.5, retries=0), HELLO, step="s")

    assert "ok" not in str(raised.value)
    assert len(openai_server.chat_requests()) == 1


def test_the_breaker_opens_then_closes_after_its_cooldown(
    openai_server: OpenAIServer, api_key: str
) -> None:
    healthy = {"flaky": False}
    openai_server.default = lambda request: (
        Reply(status=503)
        if request["model"] == "flaky" and not healthy["flaky"]
        else Reply(content=request["model"])
    )
    now = [1000.0]  # the breakers' clock: it moves only when the test moves it
    provider = Provider(
        ledger=Ledger(), breakers=Breakers(threshold=2, cooldown=1.5, clock=lambda: now[0])
    )
    flaky = route(openai_server, api_key, "openai/flaky", retries=1, fallbacks=("openai/steady",))

    assert provider.complete(flaky, HELLO, step="s").content == "steady"  # 2 failures open it
    assert len(openai_server.chat_requests("flaky")) == 2
    assert provider.breakers.get("openai/flaky").state == "open"

    assert provider.complete(flaky, HELLO, step="s").content == "steady"
    assert len(openai_server.chat_requests("flaky")) == 2  # open: not a single request
    with pytest.raises(ProviderError, match="circuit open"):
        provider.complete(route(openai_server, api_key, "openai/flaky"), HELLO, step="s")
    assert len(openai_server.chat_requests("flaky")) == 2

    healthy["flaky"] = True
    now[0] += 1.4
    assert provider.breakers.get("openai/flaky").state == "open"  # still cooling down
    now[0] += 0.1
    assert provider.breakers.get("openai/flaky").state == "half_open"
    assert provider.complete(flaky, HELLO, step="s").content == "flaky"
    assert len(openai_server.chat_requests("flaky")) == 3
    assert provider.breakers.get("openai/flaky").state == "closed"


def test_tokens_and_cost_totals_equal_the_servers_usage(
    openai_server: OpenAIServer, api_key: str
) -> None:
    import litellm  # the test's own price lookup, independent of codexflow's

    openai_server.enqueue(
        Reply(prompt_tokens=1200, completion_tokens=300),
        Reply(prompt_tokens=800, completion_tokens=100),
        Reply(),
    )
    ledger = Ledger()
    provider = Provider(ledger=ledger)
    priced = route(openai_server, api_key, "openai/gpt-4o-mini")

    provider.complete(priced, HELLO, step="plan")
    provider.complete(priced, HELLO, step="code")
    unpriced = provider.complete(route(openai_server, api_key), HELLO, step="code")

    prices = litellm.model_cost["gpt-4o-mini"]
    expected = 2000 * prices["input_cost_per_token"] + 400 * prices["output_cost_per_token"]
    totals = ledger.totals()
    assert (totals.calls, totals.prompt_tokens, totals.completion_tokens) == (3, 2010, 405)
    assert totals.cost_usd == pytest.approx(expected)
    assert not totals.cost_known  # test-model is not in the price table
    assert (unpriced.cost_usd, unpriced.cost_known) == (0.0, False)
    steps = ledger.per_step()
    assert steps["plan"].total_tokens == 1500
    assert steps["plan"].cost_usd == pytest.approx(
        1200 * prices["input_cost_per_token"] + 300 * prices["output_cost_per_token"]
    )
    assert steps["code"].total_tokens == 915


def test_the_budget_stops_the_next_call_and_keeps_what_was_charged(
    openai_server: OpenAIServer, api_key: str
) -> None:
    # Room for one call's worst case (its prompt and max_tokens: 50), not for a second one
    # after the first spent 15 tokens.
    worst = worst_prompt(count_prompt("openai/test-model", HELLO.messages, ())) + 50
    limit = worst + 14
    ledger = Ledger(max_tokens=limit)
    provider = Provider(ledger=ledger)

    provider.complete(route(openai_server, api_key, max_tokens=50), HELLO, step="first")
    with pytest.raises(
        BudgetExceeded,
        match=rf"before step 'second': the run has spent 15 tokens of its limit of {limit}",
    ):
        provider.complete(route(openai_server, api_key, max_tokens=50), HELLO, step="second")

    assert len(openai_server.chat_requests()) == 1
    assert ledger.totals().total_tokens == 15
    assert list(ledger.per_step()) == ["first"]


def test_litellm_sends_exactly_one_request_per_attempt(
    openai_server: OpenAIServer, api_key: str
) -> None:
    """Guards the single retry layer: neither litellm nor the OpenAI SDK may retry on their own."""
    openai_server.default = Reply(status=500)
    provider = Provider(ledger=Ledger())

    with pytest.raises(ProviderError):
        provider.complete(route(openai_server, api_key, retries=0), HELLO, step="s")

    assert len(openai_server.chat_requests()) == 1


def test_a_malformed_body_is_transient(openai_server: OpenAIServer, api_key: str) -> None:
    openai_server.enqueue(Reply(body=b"{not json"))
    provider = Provider(ledger=Ledger())

    response = provider.complete(route(openai_server, api_key), HELLO, step="s")

    assert response.content == "ok" and response.attempts == 2


def test_a_context_window_error_is_not_retried_but_falls_back(
    openai_server: OpenAIServer, api_key: str
) -> None:
    too_long = {
        "error": {
            "message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
            "type": "invalid_request_error",
            "code": "context_length_exceeded",
        }
    }
    openai_server.default = lambda request: (
        Reply(status=400, body=too_long)
        if request["model"] == "small"
        else Reply(content="big enough")
    )
    provider = Provider(ledger=Ledger())

    response = provider.complete(
        route(openai_server, api_key, "openai/small", fallbacks=("openai/large",)), HELLO, step="s"
    )

    assert response.content == "big enough"
    assert [r.json["model"] for r in openai_server.chat_requests() if r.json] == ["small", "large"]


def test_a_missing_key_variable_sends_nothing(
    openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CODEXFLOW_UNSET_API_KEY", raising=False)
    provider = Provider(ledger=Ledger())

    with pytest.raises(ProviderError, match="API key variable CODEXFLOW_UNSET_API_KEY is not set"):
        provider.complete(route(openai_server, "CODEXFLOW_UNSET_API_KEY"), HELLO, step="s")

    assert openai_server.chat_requests() == []


def test_a_json_schema_is_sent_as_a_json_schema_response_format(
    openai_server: OpenAIServer, api_key: str
) -> None:
    schema = {"type": "object", "properties": {"units": {"type": "array"}}, "required": ["units"]}
    openai_server.enqueue(Reply(content='{"units": []}'))

    response = Provider().complete(
        route(openai_server, api_key), ChatRequest(HELLO.messages, response_format=schema), step="s"
    )

    assert response.content == '{"units": []}'
    sent = openai_server.chat_requests()[0].json
    assert sent is not None
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }
