"""A hosted model without its API key fails at once, naming the variable, and sends nothing."""

from __future__ import annotations

import pytest

from codexflow.errors import ProviderError
from codexflow.providers import ChatRequest, Ledger, ModelRoute, Provider

MESSAGES = [{"role": "user", "content": "hi"}]


def test_missing_key_fails_fast_with_the_variable_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    waits: list[float] = []
    provider = Provider(ledger=Ledger(), sleep=waits.append)
    with pytest.raises(ProviderError, match="OPENAI_API_KEY not set") as raised:
        provider.complete(
            ModelRoute("openai/gpt-4o-mini", retries=3, retry_delay=2.0),
            ChatRequest(MESSAGES),
            step="plan",
        )
    assert waits == []  # no retry back-off spent on a missing key
    assert "--replay or --script" in str(raised.value)


def test_a_fallback_with_its_key_still_answers(
    monkeypatch: pytest.MonkeyPatch, openai_server
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("CODEXFLOW_TEST_KEY", "sk-test")
    route = ModelRoute(
        "anthropic/claude-sonnet-4-5",
        fallbacks=("openai/test-model",),
        retries=0,
    )
    # The fallback reaches the local server through its own endpoint and key variable.
    local = ModelRoute(
        "openai/test-model", api_base=openai_server.url, api_key_env="CODEXFLOW_TEST_KEY", retries=0
    )
    provider = Provider(ledger=Ledger())
    with pytest.raises(ProviderError, match="ANTHROPIC_API_KEY not set"):
        provider.complete(route, ChatRequest(MESSAGES), step="plan")
    assert provider.complete(local, ChatRequest(MESSAGES), step="plan").content == "ok"
    assert len(openai_server.chat_requests()) == 1


def test_local_endpoints_need_no_hosted_key(monkeypatch: pytest.MonkeyPatch, openai_server) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("CODEXFLOW_TEST_KEY", "sk-test")
    route = ModelRoute(
        "openai/test-model", api_base=openai_server.url, api_key_env="CODEXFLOW_TEST_KEY", retries=0
    )
    assert (
        Provider(ledger=Ledger()).complete(route, ChatRequest(MESSAGES), step="x").content == "ok"
    )
