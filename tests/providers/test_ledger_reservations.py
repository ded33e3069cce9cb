"""The budget holds calls in flight: each reserves its worst case, waits for room, releases."""

from __future__ import annotations

import threading

import pytest

from codexflow.errors import BudgetExceeded
from codexflow.providers import Ledger
from codexflow.providers.ledger import MIN_COMPLETION
from codexflow.providers.types import Usage


def test_a_call_reserves_its_prompt_and_max_tokens_and_gives_back_the_rest() -> None:
    ledger = Ledger(max_tokens=1000)
    first = ledger.reserve("a", prompt_tokens=100, max_completion=300, prices=None)
    assert first.tokens == 110 + 300 and first.completion_tokens == 300
    second = ledger.reserve("b", prompt_tokens=100, max_completion=300, prices=None)
    # 1000 - 2 * 410 = 180 left: a third worst case (410) does not fit while both are in flight,
    # and nothing would give room back after the others if they spent it all: it waits; here
    # the first returns having used 150 tokens, which frees room for the third.
    started = threading.Event()
    granted: list[int] = []

    def third() -> None:
        started.set()
        granted.append(
            ledger.reserve("c", prompt_tokens=100, max_completion=300, prices=None).tokens
        )

    thread = threading.Thread(target=third)
    thread.start()
    assert started.wait(5)
    assert not granted  # waiting for room, not started
    ledger.charge("a", "m", Usage(100, 50), 0.0)
    ledger.release(first)
    thread.join(10)
    assert granted == [410]
    ledger.release(second)


def test_with_nothing_in_flight_a_call_that_cannot_fit_never_starts() -> None:
    ledger = Ledger(max_tokens=500)
    ledger.charge("a", "m", Usage(300, 100), 0.0)
    with pytest.raises(BudgetExceeded, match="spent 400 tokens of its limit of 500"):
        ledger.reserve("b", prompt_tokens=100, max_completion=None, prices=None)


def test_without_max_tokens_a_call_is_told_what_is_left() -> None:
    ledger = Ledger(max_tokens=1000)
    grant = ledger.reserve("a", prompt_tokens=100, max_completion=None, prices=None)
    assert grant.completion_tokens == 1000 - 110 and grant.tokens == 1000
    ledger.release(grant)


def test_a_declared_bound_larger_than_the_budget_is_cut_to_what_is_left() -> None:
    ledger = Ledger(max_tokens=500)
    grant = ledger.reserve("a", prompt_tokens=100, max_completion=4096, prices=None)
    assert grant.completion_tokens == 500 - 110 >= MIN_COMPLETION


def test_the_usd_limit_reserves_at_the_model_price() -> None:
    ledger = Ledger(max_usd=0.01)
    prices = (1e-6, 1e-5)  # USD per input and output token
    grant = ledger.reserve("a", prompt_tokens=1000, max_completion=None, prices=prices)
    # 0.01 - 1100 * 1e-6 = 0.0089 USD left for the answer: 890 tokens at 1e-5.
    assert grant.completion_tokens == 890
    ledger.release(grant)
    ledger.charge("a", "m", Usage(1000, 890), 0.0099)
    with pytest.raises(BudgetExceeded) as raised:
        ledger.reserve("b", prompt_tokens=1000, max_completion=None, prices=prices)
    assert raised.value.limit_kind == "usd"


def test_an_unpriced_model_is_not_held_back_by_a_usd_limit() -> None:
    ledger = Ledger(max_usd=0.01)
    grant = ledger.reserve("a", prompt_tokens=1000, max_completion=None, prices=None)
    assert grant.completion_tokens is None  # nothing to tell it: its cost is unknown


def test_concurrent_reservations_never_pass_the_limit() -> None:
    ledger = Ledger(max_tokens=5000)
    spent_worst: list[int] = []
    lock = threading.Lock()
    in_flight = {"tokens": 0, "peak": 0}

    def worker() -> None:
        for _ in range(20):
            try:
                grant = ledger.reserve("s", prompt_tokens=50, max_completion=200, prices=None)
            except BudgetExceeded:
                return
            with lock:
                in_flight["tokens"] += grant.tokens
                spent = ledger.totals().total_tokens
                in_flight["peak"] = max(in_flight["peak"], spent + in_flight["tokens"])
            # An honest server: the answer is at most the max_tokens it was sent.
            ledger.charge("s", "m", Usage(50, min(200, grant.completion_tokens or 200)), 0.0)
            with lock:
                in_flight["tokens"] -= grant.tokens
                spent_worst.append(grant.tokens)
            ledger.release(grant)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert ledger.totals().total_tokens <= 5000
    assert in_flight["peak"] <= 5000 + 8 * 10  # worst cases held never passed the limit
    assert ledger.totals().calls >= 5000 // 255  # every call that fitted did run
