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


class Observed:
    """The real clock and sleep, seen from inside a limiter: what it granted, and every sleep it
    asked for. Grants are the limiter's own clock readings, so a thread descheduled after its
    grant (a busy machine) cannot move them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self.grants: list[float] = []
        self.sleeps: list[float] = []

    def clock(self) -> float:
        self._local.now = time.monotonic()
        return self._local.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
        time.sleep(seconds)

    def watch(self, limiter: RateLimiter) -> RateLimiter:
        """Note each grant: the last clock reading of the thread whose acquire returns."""
        acquire = limiter.acquire

        def watched() -> float:
            waited = acquire()
            with self._lock:
                self.grants.append(self._local.now)
            return waited

        limiter.acquire = watched  # type: ignore[method-assign]
        return limiter


def test_threads_never_exceed_the_limit_in_any_window() -> None:
    observed = Observed()
    limiter = observed.watch(RateLimiter(2, 0.2, clock=observed.clock, sleep=observed.sleep))

    with ThreadPoolExecutor(max_workers=6) as pool:
        for _ in range(6):
            pool.submit(limiter.acquire)
    grants = observed.grants
    assert len(grants) == 6
    assert max_in_window(grants, 0.2) <= 2
    # 6 starts, 2 a window: pairs at 0, 0.2, 0.4 s (1e-9: the sums of floats may differ by an ulp)
    assert max(grants) - min(grants) >= 0.4 - 1e-9
    # Work, not seconds: no wait asked for is longer than one window.
    assert max(observed.sleeps, default=0.0) <= 0.2


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
    """rpm=2 per 1 s, 5 calls from 5 threads: granted in pairs a window apart, one grant per
    request the server counts; another provider prefix is not held back; a retried attempt
    counts as a request too."""
    window = 1.0
    openai_server.default = Reply(content="ok")
    request = ChatRequest(messages=[{"role": "user", "content": "hello"}])

    def route(model: str = "openai/test-model", **extra: Any) -> ModelRoute:
        return ModelRoute(
            model, api_base=openai_server.url, api_key_env=api_key, timeout=10.0, **extra
        )

    def limited() -> tuple[Provider, Observed]:
        provider = Provider(ledger=Ledger())  # limits of its own, not the process-wide ones
        observed = Observed()
        provider.rate_limits = RateLimits(
            {"openai": 2}, window, clock=observed.clock, sleep=observed.sleep
        )
        limiter = provider.rate_limits.for_model("openai/test-model")
        assert limiter is not None
        observed.watch(limiter)
        return provider, observed

    provider, observed = limited()
    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(
            pool.map(lambda i: provider.complete(route(), request, step=f"s{i}"), range(5))
        )
    assert [a.content for a in answers] == ["ok"] * 5
    assert len(openai_server.chat_requests()) == 5 == len(observed.grants)
    assert max_in_window(observed.grants, window) <= 2
    assert max(observed.grants) - min(observed.grants) >= 2 * window - 1e-9  # the 5th: 2 windows
    assert max(observed.sleeps, default=0.0) <= window

    # Another prefix (the same server, no limit) is not held back by openai's full window:
    # it asks the limiter nothing and waits for nothing, yet reaches the server.
    grants, sleeps = len(observed.grants), len(observed.sleeps)
    assert provider.complete(route("hosted_vllm/test-model"), request, step="free").content == "ok"
    assert (len(observed.grants), len(observed.sleeps)) == (grants, sleeps)
    assert len(openai_server.chat_requests()) == 6

    # A transient failure and its retry are two requests: both go through the limiter
    # (a fresh window, instead of sleeping until the old one empties).
    provider, observed = limited()
    openai_server.enqueue(Reply(status=503))
    retried = route(retries=1, retry_delay=0.0)
    provider.complete(retried, request, step="retry")  # 503 + retry: 2 requests
    assert len(observed.grants) == 2 and observed.sleeps == []  # the retry took a free slot
    provider.complete(retried, request, step="third")
    assert len(openai_server.chat_requests()) == 6 + 3 == 6 + len(observed.grants)
    first, _, third = observed.grants
    assert first + window <= third  # the 3rd waited for the 1st to leave the window
    assert max(observed.sleeps, default=0.0) <= window


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
