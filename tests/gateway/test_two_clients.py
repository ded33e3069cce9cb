"""Two clients applying at once stay within the spec's limits and budget: counted at a real
OpenAI-protocol server on 127.0.0.1, not inferred from timings."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from codexflow.gateway import Gateway
from tests.gateway.test_http_api import read_events
from tests.support.openai_server import OpenAIServer, Reply, openai_server

__all__ = ["openai_server"]

KEY_ENV = "CODEXFLOW_GATEWAY_TEST_KEY"
TASKS = 6
LIMIT = 2  # providers.openai.max_concurrency
BUDGET = 1000  # tokens per run; each call spends 160, and ~128 are reserved before a call
CALL = 160


def write_spec(spec_dir: Path, api_base: str) -> None:
    spec: dict[str, Any] = {
        "apiVersion": "codexflow/v1",
        "name": "fanout",
        "inputs": {"batch": {"type": "string", "default": "a"}},
        # A declared answer bound keeps calls parallel under a token budget (each reserves its
        # prompt and at most this much answer; without it a call reserves all that is left).
        "defaults": {
            "model": "openai/test-model",
            "retries": 0,
            "retry_delay": 0,
            "max_tokens": 20,
        },
        "providers": {
            "openai": {"api_base": api_base, "api_key_env": KEY_ENV, "max_concurrency": LIMIT}
        },
        "agents": {"worker": {"role": "writer", "goal": "Answer in one line.", "replicas": 6}},
        "tasks": {
            f"t{i}": {"agent": "worker", "prompt": f"BATCH-{{{{ inputs.batch }}}} item {i}"}
            for i in range(TASKS)
        },
        "budget": {"max_tokens": BUDGET},
    }
    (spec_dir / "fanout.yaml").write_text(json.dumps(spec), encoding="utf-8")


class InFlight:
    """A scripted reply that counts the requests being answered at once (peak included)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __call__(self, request: dict[str, Any]) -> Reply:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        time.sleep(0.05)  # model latency, so that calls admitted together overlap
        with self.lock:
            self.now -= 1
        return Reply(content="done", prompt_tokens=150, completion_tokens=10)


def test_two_clients_at_once_stay_within_limits_and_budget(
    http_api: Callable[..., str],
    gateway: Gateway,
    openai_server: OpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    write_spec(gateway.spec_dir, openai_server.url)
    counter = InFlight()
    openai_server.default = counter
    base = http_api()
    together = threading.Barrier(2)
    runs: dict[str, dict[str, Any]] = {}

    def client(batch: str) -> None:
        with httpx.Client(base_url=base, timeout=120) as http:
            together.wait(timeout=30)
            started = http.post("/runs", json={"spec": "fanout", "inputs": {"batch": batch}})
            assert started.status_code == 202, started.text
            run_id = started.json()["run_id"]
            read_events(http, run_id)
            runs[batch] = http.get(f"/runs/{run_id}").json()

    threads = [threading.Thread(target=client, args=(batch,)) for batch in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert set(runs) == {"a", "b"}
    for batch, run in runs.items():
        assert run["state"] == "succeeded", run["reason"]
        assert run["spent"]["tokens"] == TASKS * CALL <= BUDGET
        sent = [r for r in openai_server.chat_requests() if f"BATCH-{batch} " in json.dumps(r.json)]
        assert len(sent) == TASKS  # one call per task, nothing repeated
    # The spec allows LIMIT calls in flight: two runs of it never made it 2 x LIMIT.
    assert counter.peak == LIMIT
    # One run of a spec at a time: the later one started after the earlier one finished.
    first, second = sorted(runs.values(), key=lambda run: run["started"])
    assert second["started"] >= first["finished"]


def test_a_run_stops_at_its_budget(
    http_api: Callable[..., str],
    gateway: Gateway,
    openai_server: OpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without --allow-budget-raise nobody can lift the budget: the run stops cleanly."""
    monkeypatch.setenv(KEY_ENV, "sk-test")
    write_spec(gateway.spec_dir, openai_server.url)
    spec = gateway.spec_dir / "fanout.yaml"
    data = json.loads(spec.read_text())
    data["budget"] = {"max_tokens": 400}
    del data["defaults"]["max_tokens"]  # each call reserves all that is left: one at a time
    data["providers"]["openai"]["max_concurrency"] = 1
    spec.write_text(json.dumps(data))
    openai_server.default = Reply(content="done", prompt_tokens=150, completion_tokens=10)
    with httpx.Client(base_url=http_api(), timeout=120) as http:
        run_id = http.post("/runs", json={"spec": "fanout"}).json()["run_id"]
        events = read_events(http, run_id)
        run = http.get(f"/runs/{run_id}").json()
    assert run["state"] == "budget_reached"
    assert "budget" in run["reason"]
    # Two calls (320 tokens); the third's prompt estimate would pass 400: it never starts.
    assert run["spent"]["tokens"] == 2 * CALL
    assert len(openai_server.chat_requests()) == 2
    assert not any(e["event"] == "codexflow.gate.asked" for e in events)
