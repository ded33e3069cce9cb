"""Unit tests of the small parts: Retry-After parsing, backoff, breakers, the ledger, redaction."""

from __future__ import annotations

import email.utils
import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codexflow.errors import BudgetExceeded
from codexflow.providers import (
    Breakers,
    ChatRequest,
    CircuitBreaker,
    Ledger,
    ModelRoute,
    Provider,
    Usage,
    request_key,
)
from codexflow.providers.cassette import redact
from codexflow.providers.retry import MAX_BACKOFF, backoff, retry_after
from tests.support.openai_server import OpenAIServer, Reply


class FakeError(Exception):
    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__("fake")
        self.litellm_response_headers = headers


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_retry_after_reads_seconds_milliseconds_and_http_dates() -> None:
    now = 1_800_000_000.0
    assert retry_after(FakeError({"Retry-After": "2"}), now=now) == 2.0
    assert retry_after(FakeError({"retry-after-ms": "1500", "retry-after": "9"}), now=now) == 1.5
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert retry_after(FakeError({"Retry-After": date}), now=now) == pytest.approx(7.0)
    assert (
        retry_after(
            FakeError({"Retry-After": email.utils.formatdate(now - 60, usegmt=True)}), now=now
        )
        == 0.0
    )
    assert retry_after(FakeError({"Retry-After": "soon"}), now=now) is None
    assert retry_after(FakeError({}), now=now) is None
    assert retry_after(FakeError({"Retry-After": "86400"}), now=now) == 300.0


@given(st.integers(min_value=0, max_value=40), st.floats(min_value=0, max_value=10))
def test_backoff_stays_within_its_full_jitter_window(attempt: int, base: float) -> None:
    delay = backoff(attempt, base, random.Random(attempt))
    assert 0.0 <= delay <= min(base * 2**attempt, MAX_BACKOFF)


def test_a_breaker_opens_half_opens_with_one_probe_and_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cooldown=10, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # not consecutive any more
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 10
    assert breaker.state == "half_open"
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.record_failure()
    assert breaker.state == "open"  # a failed probe reopens at once
    clock.now += 10
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()


def test_breakers_are_per_model() -> None:
    breakers = Breakers(threshold=1)
    breakers.get("a").record_failure()
    assert breakers.get("a").state == "open" and breakers.get("b").state == "closed"
    assert breakers.get("a") is breakers.get("a")


def test_the_usd_budget_counts_the_next_prompt() -> None:
    ledger = Ledger(max_usd=0.01)
    ledger.charge("a", "m", Usage(100, 50), 0.009)
    ledger.check_before_call("b", next_usd=0.0005)
    with pytest.raises(
        BudgetExceeded,
        match=r"spent \$0.0090 of its limit of \$0.0100, and the next call needs about \$0.0020",
    ):
        ledger.check_before_call("b", next_usd=0.002)
    ledger.charge("b", "m", Usage(10, 5), 0.001)
    with pytest.raises(BudgetExceeded):
        ledger.check_before_call("c")


def test_the_ledger_is_exact_under_threads() -> None:
    ledger = Ledger()

    def charge(index: int) -> None:
        for _ in range(200):
            ledger.charge(f"step{index % 4}", "m", Usage(3, 2), 0.5)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(charge, range(8)))
    assert ledger.totals().calls == 1600 and ledger.totals().total_tokens == 8000
    assert sum(s.calls for s in ledger.per_step().values()) == 1600


def test_redaction_drops_secret_keys_and_values() -> None:
    value = {
        "Authorization": "Bearer abc",
        "messages": [{"content": "token=ghp_123456789 ok"}],
        "n": 3,
    }
    assert redact(value, ["ghp_123456789", "abc"]) == {
        "Authorization": "<redacted>",
        "messages": [{"content": "token=<redacted> ok"}],
        "n": 3,
    }


def test_the_request_key_ignores_dict_order_but_not_content() -> None:
    a = request_key("m", [{"role": "user", "content": "x"}], temperature=0.1)
    assert a == request_key("m", [{"content": "x", "role": "user"}], temperature=0.1)
    assert a != request_key("m", [{"role": "user", "content": "y"}], temperature=0.1)
    assert a != request_key("m", [{"role": "user", "content": "x"}], temperature=0.2)
    assert a != request_key("n", [{"role": "user", "content": "x"}], temperature=0.1)


def test_concurrent_calls_are_all_accounted(openai_server: OpenAIServer, api_key: str) -> None:
    ledger = Ledger()
    provider = Provider(ledger=ledger)
    route = ModelRoute(
        "openai/test-model", api_base=openai_server.url, api_key_env=api_key, retry_delay=0.01
    )

    def ask(index: int) -> str | None:
        request = ChatRequest([{"role": "user", "content": f"question {index}"}])
        return provider.complete(route, request, step=f"s{index % 3}").content

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(ask, range(12)))
    assert answers == ["ok"] * 12
    assert len(openai_server.chat_requests()) == 12
    assert ledger.totals().total_tokens == 12 * 15


def test_importing_the_package_does_not_import_litellm() -> None:
    code = "import sys, codexflow.providers; print('litellm' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, env=env, timeout=60
    )
    assert result.stdout.strip() == "False", result.stderr


def test_the_fake_server_logs_requests_and_streams(openai_server: OpenAIServer) -> None:
    import json
    import urllib.request

    openai_server.enqueue(Reply(content="one two three"))
    body = json.dumps({"model": "m", "messages": [], "stream": True}).encode()
    request = urllib.request.Request(
        f"{openai_server.url}/chat/completions", data=body, method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        events = [
            line for line in response.read().decode().splitlines() if line.startswith("data: ")
        ]
    assert events[-1] == "data: [DONE]"
    words = [json.loads(e[6:])["choices"][0]["delta"].get("content", "") for e in events[:-2]]
    assert "".join(words) == "one two three"
    assert json.loads(events[-2][6:])["usage"]["total_tokens"] == 15
    assert openai_server.chat_requests()[0].json == {"model": "m", "messages": [], "stream": True}
