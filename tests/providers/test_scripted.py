"""The scripted provider: canned replies through the same path as real ones (retries, ledger)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from codexflow.errors import ProviderError
from codexflow.providers import ChatRequest, Ledger, ModelRoute, Provider, Script

ASK = ChatRequest(messages=[{"role": "user", "content": "go"}])

SCRIPT = """\
replies:
  - step: plan
    content: {units: [a.py]}
    usage: {prompt_tokens: 12, completion_tokens: 4}
  - step: code
    tool_calls: [{name: write_file, arguments: {path: a.py, text: "x = 1"}}]
  - step: code
    content: done
  - model: scripted/reviewer
    content: LGTM
    repeat: true
"""


def test_replies_are_matched_per_step_and_model_in_order(tmp_path: Path) -> None:
    (tmp_path / "script.yaml").write_text(SCRIPT)
    ledger = Ledger()
    provider = Provider(ledger=ledger, script=Script.load(tmp_path / "script.yaml"))
    coder = ModelRoute("scripted/coder")

    assert provider.complete(coder, ASK, step="code").tool_calls[0].name == "write_file"
    assert json.loads(provider.complete(coder, ASK, step="plan").content or "") == {
        "units": ["a.py"]
    }
    assert provider.complete(coder, ASK, step="code").content == "done"
    for _ in range(3):
        assert (
            provider.complete(ModelRoute("scripted/reviewer"), ASK, step="review").content == "LGTM"
        )
    with pytest.raises(
        ProviderError, match="no scripted reply left for step 'code' \\(model scripted/coder\\)"
    ):
        provider.complete(ModelRoute("scripted/coder", retries=0), ASK, step="code")

    assert ledger.per_step()["plan"].total_tokens == 16
    # Scripted answers reach no provider: they cost nothing, and that is known.
    assert ledger.totals().calls == 6 and ledger.totals().cost_known
    assert ledger.totals().cost_usd == 0.0


def test_scripted_errors_are_retried_and_honour_retry_after() -> None:
    script = Script.of(
        {"error": {"status": 429, "retry_after": 0.3}},
        {"error": {"status": 503}},
        {"content": "third time"},
    )
    waits: list[float] = []  # the provider's back-off sleeps, asked for and not slept
    provider = Provider(ledger=Ledger(), script=script, sleep=waits.append)

    response = provider.complete(ModelRoute("scripted/x", retry_delay=0.01), ASK, step="s")

    assert response.content == "third time" and response.attempts == 3
    assert waits[0] == pytest.approx(0.3)  # what Retry-After asked for
    assert len(waits) == 2 and 0.0 <= waits[1] <= 0.02  # then jittered backoff: base 0.01 * 2**1


def test_a_scripted_delay_past_the_timeout_is_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    script = Script.of({"content": "late", "delay": 5}, {"content": "on time"})
    waits: list[float] = []
    provider = Provider(ledger=Ledger(), script=script, sleep=waits.append)
    slept: list[float] = []  # every real sleep of the call, the scripted server's included
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    response = provider.complete(
        ModelRoute("scripted/x", timeout=0.2, retry_delay=0.01), ASK, step="s"
    )

    assert response.content == "on time" and response.attempts == 2
    assert len(waits) == 1  # one back-off between the two attempts
    # The first attempt was cut at the timeout: nothing waited out the scripted 5 s.
    assert 0.2 in slept and max(slept) <= 0.2


def test_a_script_in_json_with_a_401_fails_fast(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(
        json.dumps([{"error": {"status": 401, "message": "bad key"}}, {"content": "never"}])
    )
    provider = Provider(ledger=Ledger(), script=Script.load(path))

    with pytest.raises(ProviderError, match="bad key"):
        provider.complete(ModelRoute("scripted/x"), ASK, step="s")


def test_unknown_keys_in_a_script_are_errors() -> None:
    with pytest.raises(ProviderError, match="unknown keys: contnet"):
        Script.of({"contnet": "typo"})
