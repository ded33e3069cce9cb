"""Per-provider `rpm`: the sliding-window limiter (fake clock), and Provider against the HTTP server."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from codexflow.providers import ChatRequest, Ledger, ModelRoute, Provider
from codexflow.providers.rate import RateLimiter, RateLimits
from tests.support.openai_server import OpenAIServer, Reply


class FakeTime:
    """A clock that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def max_in_window(starts: list[float], window: float) -> int:
    """The most starts inside any half-open interval [t, t + window)."""
    starts = sorted(starts)
    return max(sum(1 for s in starts[i:] if s < t + window) for i, t in enumerate(starts))


def test_limit_starts_at_once_then_waits_for_the_oldest_to_leave_the_window() -> None:
    fake = FakeTime()
    limiter = RateLimiter(3, 60.0, clock=fake.clock, sleep=fake.sleep)
    assert [limiter.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert fake.now == 1000.0 and fake.sleeps == []

    assert limiter.acquire() == pytest.approx(60.0)  # the 4th waits for the 1st to expire
    assert fake.now == pytest.approx(1060.0)


def test_spread_starts_free_their_slots_one_by_one() -> None:
    fake = FakeTime()
    limiter = RateLimiter(2, 10.0, clock=fake.clock, sleep=fake.sleep)
    starts = []
    for gap in (0.0, 4.0, 0.0, 0.0, 0.0, 25.0, 0.0):
        fake.now += gap
        limiter.acquire()
        starts.append(fake.now)
    # 1000, 1004 | 1010 (1000 left), 1014 (1004 left), 1020 | +25 -> 1045, 1045 (both free)
    assert starts == [1000.0, 1004.0, 1010.0, 1014.0, 1020.0, 1045.0, 1045.0]
    assert max_in_window(starts, 10.0) == 2


def test_threads_never_exceed_the_limit_in_any_window() -> None:
    limiter = RateLimiter(2, 0.2)
    starts: list[float] = []
    lock = threading.Lock()

    def go() -> None:
        limiter.acquire()
        with lock:
            starts.append(time.monotonic())

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=6) as pool:
        for _ in range(6):
            pool.submit(go)
    elapsed = time.monotonic() - began
    assert len(starts) == 6
    # A tiny tolerance: the limiter's clock reading and ours differ by microseconds.
    assert max_in_window(starts, 0.2 - 0.005) <= 2
    assert 0.4 - 0.02 <= elapsed < 2.0  # pairs at 0, 0.2, 0.4 s


def test_limits_are_per_provider_prefix() -> None:
    fake = FakeTime()
    limits = RateLimits({"openai": 1}, 60.0, clock=fake.clock, sleep=fake.sleep)
    assert limits.acquire("openai/gpt-4o-mini") == 0.0
    assert limits.acquire("anthropic/claude") == 0.0  # no limit for this provider
    assert limits.acquire("anthropic/claude") == 0.0
    assert limits.acquire("gpt-4o") == 0.0  # no prefix: no provider entry applies
    assert limits.acquire("openai/other-model") == pytest.approx(60.0)  # same provider
    assert not RateLimits(None) and not RateLimits({})


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)
    with pytest.raises(ValueError):
        RateLimiter(1, 0.0)


def test_provider_spaces_requests_to_the_http_server(
    openai_server: OpenAIServer, api_key: str
) -> None:
    """rpm=2 per 1 s, 5 calls from 5 threads: the server sees them in pairs a window apart;
    another provider prefix is not held back; a retried attempt counts as a request too."""
    window = 1.0
    slack = 0.15  # client-side time between the limiter's start and the request's arrival
    openai_server.default = Reply(content="ok")
    request = ChatRequest(messages=[{"role": "user", "content": "hello"}])

    def route(model: str = "openai/test-model", **extra: Any) -> ModelRoute:
        return ModelRoute(
            model, api_base=openai_server.url, api_key_env=api_key, timeout=10.0, **extra
        )

    # Warm litellm up first (import, client set-up: most of a second on the first call), so
    # arrival times at the server follow the limiter's start times closely.
    Provider(ledger=Ledger()).complete(route(), request, step="warm-up")
    provider = Provider(ledger=Ledger(), rpm={"openai": 2}, rpm_window=window)

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(
            pool.map(lambda i: provider.complete(route(), request, step=f"s{i}"), range(5))
        )
    assert [a.content for a in answers] == ["ok"] * 5
    times = [r.time for r in openai_server.chat_requests()[1:]]
    assert len(times) == 5
    assert max_in_window(times, window - slack) <= 2
    assert max(times) - began >= 2 * window - 0.01  # the 5th waited for two windows
    assert max(times) - began < 2 * window + 1.0

    # Another prefix (the same server, no limit) is not held back by openai's full window.
    before = time.monotonic()
    provider.complete(route("hosted_vllm/test-model"), request, step="free")
    assert time.monotonic() - before < window / 2

    # A transient failure and its retry are two requests: both go through the limiter.
    time.sleep(window)  # the window empties
    openai_server.enqueue(Reply(status=503))
    retried = route(retries=1, retry_delay=0.0)
    provider.complete(retried, request, step="retry")  # 503 + retry: 2 requests
    provider.complete(retried, request, step="third")
    last = [r.time for r in openai_server.chat_requests()[-3:]]
    assert last[1] - last[0] < window / 2  # the retry went at once: a free slot
    assert last[2] - last[0] >= window - slack  # the 3rd waited for the 1st to leave the window


def test_apply_passes_the_specs_rpm_to_its_provider(tmp_path: Path) -> None:
    from codexflow.api import ApplyOptions, build_provider
    from codexflow.spec import load_spec

    spec_file = tmp_path / "swarm.yaml"
    spec_file.write_text(
        "apiVersion: codexflow/v1\n"
        "name: limited\n"
        "providers:\n"
        "  openai: {rpm: 30}\n"
        "  anthropic: {max_concurrency: 2}\n"
        "agents:\n"
        "  a: {role: writer}\n"
        "  b: {role: writer, model: anthropic/claude-sonnet-4-5}\n"
        "tasks:\n"
        "  t: {agent: a, prompt: hi}\n"
        "  u: {agent: b, prompt: hi}\n",
        encoding="utf-8",
    )
    provider, _ = build_provider(load_spec(spec_file), ApplyOptions())
    limiter = provider.rate_limits.for_model("openai/gpt-4o-mini")
    assert limiter is not None and (limiter.limit, limiter.window) == (30, 60.0)
    assert provider.rate_limits.for_model("anthropic/claude") is None


def test_runs_in_one_process_share_the_allowance() -> None:
    from codexflow.providers.rate import RateLimits

    first, second = RateLimits({"openai": 7}), RateLimits({"openai": 7})
    assert first.for_model("openai/a") is second.for_model("openai/b")
    assert RateLimits({"openai": 8}).for_model("openai/a") is not first.for_model("openai/a")
