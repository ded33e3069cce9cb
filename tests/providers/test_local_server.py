"""A model server of the spec's own (`api_base`): no key needed, and a clear word when it is
not there."""

from __future__ import annotations

import socket

import pytest

from codexflow.errors import ProviderError
from codexflow.providers import ChatRequest, Ledger, ModelRoute, Provider
from tests.support.openai_server import OpenAIServer

MESSAGES = [{"role": "user", "content": "hi"}]


def test_an_openai_model_on_a_local_server_needs_no_key(
    monkeypatch: pytest.MonkeyPatch, openai_server: OpenAIServer
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    route = ModelRoute("openai/my-local-model", api_base=openai_server.url, retries=0)
    answer = Provider(ledger=Ledger()).complete(route, ChatRequest(MESSAGES), step="x")
    assert answer.content == "ok"
    (request,) = openai_server.chat_requests()
    assert request.json is not None and request.json["model"] == "my-local-model"


def test_an_unreachable_server_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with socket.socket() as probe:  # a port that nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    route = ModelRoute("openai/m", api_base=url, retries=1, retry_delay=0.0)
    with pytest.raises(ProviderError) as raised:
        Provider(ledger=Ledger()).complete(route, ChatRequest(MESSAGES), step="plan")
    message = str(raised.value)
    assert f"cannot connect to {url}" in message
    assert "InternalServerError" not in message and "500" not in message


def test_a_provider_litellm_does_not_know_is_said_plainly() -> None:
    route = ModelRoute("opnai/gpt-4o-mini", retries=0)
    with pytest.raises(ProviderError) as raised:
        Provider(ledger=Ledger()).complete(route, ChatRequest(MESSAGES), step="plan")
    assert "litellm does not know the provider `opnai`" in str(raised.value)
    assert "LLM Provider NOT provided" not in str(raised.value)
