"""The HTTP API over real HTTP on 127.0.0.1: verbs, runs as resources, SSE, approvals, guards."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from codexflow.gateway import Gateway
from codexflow.gateway.http_api import create_app, is_loopback, openapi_document

ROOT = Path(__file__).resolve().parents[2]


def read_events(client: httpx.Client, run_id: str, since: int = 0) -> list[dict[str, Any]]:
    """Read the run's SSE stream to its end (it ends with the run); every event parsed."""
    events: list[dict[str, Any]] = []
    with client.stream("GET", f"/runs/{run_id}/events", params={"since": since}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line == "":
                if "data" in fields:
                    event = json.loads(fields["data"])
                    assert event["event"] == fields["event"] and str(event["seq"]) == fields["id"]
                    events.append(event)
                fields = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                fields[key] = value
    return events


def test_validate_and_plan(http_api: Callable[..., str]) -> None:
    with httpx.Client(base_url=http_api()) as client:
        broken = client.post("/validate", json={"spec": "broken"}).json()
        assert broken["valid"] is False
        [issue] = broken["issues"]
        assert (issue["line"], issue["col"]) == (8, 12)
        assert issue["text"].endswith("(did you mean 'writer'?)")
        text = client.post("/validate", json={"text": "apiVersion: codexflow/v1\nname: [x\n"})
        assert text.json()["valid"] is False and text.json()["issues"][0]["path"] == "<text>"
        plan = client.post("/plan", json={"spec": "gated"}).json()
        assert [s["id"] for s in plan["steps"]] == ["draft", "publish.approval", "publish"]
        assert "usd" in plan["estimate"]
        missing = client.post("/plan", json={"spec": "helo"})
        assert missing.status_code == 404 and "did you mean `hello`" in missing.json()["error"]
        bad_input = client.post("/runs", json={"spec": "hello", "inputs": {"topik": "x"}})
        assert bad_input.status_code == 422
        assert "did you mean" in json.dumps(bad_input.json()["issues"])
        deep: Any = "x"
        for _ in range(200):
            deep = [deep]
        for value, problem in ((3, "expected string, got int"), (deep, "nested deeper")):
            typed = client.post("/plan", json={"spec": "hello", "inputs": {"topic": value}})
            assert typed.status_code == 422 and problem in typed.json()["issues"][0]["message"]
        specs = client.get("/specs").json()["specs"]
        assert {s["name"]: s["valid"] for s in specs} == {
            "broken": False,
            "gated": True,
            "hello": True,
        }
        assert client.get("/specs/hello").text.startswith("# A two-step spec")


def test_a_specs_shared_memory_is_read_and_searched(
    http_api: Callable[..., str], spec_dir: Path, tmp_path: Path
) -> None:
    """What a spec's agents stored in its lasting memory, over HTTP (as over MCP)."""
    from codexflow.memory import Memory, config_from_spec
    from codexflow.spec import load_spec

    spec = spec_dir / "hello.yaml"
    # Where runs of `hello` under this server keep their memory (its state subdirectory).
    state = tmp_path / "state" / "specs" / "hello"
    memory = Memory(config_from_spec(load_spec(spec), state, base=spec_dir))
    memory.put("release", "Tag a release only after the changelog lists every change.")
    memory.put("style", "Prefer small functions with names that explain themselves.")
    memory.close()
    with httpx.Client(base_url=http_api()) as client:
        found = client.get("/specs/hello/memory/release").json()
        assert found["found"] is True and found["value"].startswith("Tag a release")
        missing = client.get("/specs/hello/memory/nothing").json()
        assert (missing["found"], missing["value"]) == (False, None)
        hits = client.get("/specs/hello/memory", params={"query": "changelog", "limit": 1})
        assert [hit["key"] for hit in hits.json()["hits"]] == ["release"]
        unknown = client.get("/specs/helo/memory/release")
        assert unknown.status_code == 404 and "did you mean `hello`" in unknown.json()["error"]
        too_many = client.get("/specs/hello/memory", params={"query": "x", "limit": 51})
        assert too_many.status_code == 422


def test_run_to_the_end_with_server_sent_events(http_api: Callable[..., str]) -> None:
    with httpx.Client(base_url=http_api(), timeout=60) as client:
        started = client.post("/runs", json={"spec": "hello", "inputs": {"topic": "sse"}})
        assert started.status_code == 202
        run_id = started.json()["run_id"]
        events = read_events(client, run_id)
        names = [(e["event"], e["step_id"]) for e in events]
        assert ("codexflow.step.finished", "draft") in names
        assert ("codexflow.step.finished", "polish") in names
        assert names[-1] == ("codexflow.run.finished", None)
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        # A client that reconnects with Last-Event-ID gets only what it has not seen.
        with client.stream(
            "GET", f"/runs/{run_id}/events", headers={"Last-Event-ID": str(events[-2]["seq"])}
        ) as again:
            assert sum(line.startswith("data: ") for line in again.iter_lines()) == 1
        run = client.get(f"/runs/{run_id}").json()
        assert run["state"] == "succeeded" and run["steps_done"] == run["steps_total"] == 2
        assert run["outputs"]["polish"] == "Calculators add numbers, fast."
        assert run["spent"]["tokens"] == 20 + 5 + 30 + 6
        assert client.get(f"/runs/{run_id}/report").text.startswith("# hello — run")
        assert run_id in [r["run_id"] for r in client.get("/runs").json()["runs"]]


def test_approve_a_gate_and_cancel_another_run(
    http_api: Callable[..., str], gateway: Gateway
) -> None:
    with httpx.Client(base_url=http_api(), timeout=60) as client:
        first = client.post("/runs", json={"spec": "gated"}).json()["run_id"]
        asked = wait_for(client, first, "codexflow.gate.asked")
        assert asked["payload"]["gate"] == "publish"
        pending = client.get(f"/runs/{first}").json()["pending_approvals"]
        assert [(p["gate"], p["kind"]) for p in pending] == [("publish", "gate")]
        assert client.post(f"/runs/{first}/approvals/nope", json={}).status_code == 404
        answer = client.post(f"/runs/{first}/approvals/publish")  # no body: yes
        assert answer.status_code == 200 and answer.json()["answered"]["gate"] == "publish"
        read_events(client, first)
        done = client.get(f"/runs/{first}").json()
        assert done["state"] == "succeeded" and done["outputs"]["publish"] == "published"

        # Same spec, new inputs: the run waits at its gate; a cancel denies it and stops it.
        second = client.post("/runs", json={"spec": "gated", "inputs": {"topic": "cancel"}})
        second_id = second.json()["run_id"]
        wait_for(client, second_id, "codexflow.gate.asked")
        assert client.post(f"/runs/{second_id}/cancel").status_code == 200
        events = read_events(client, second_id)
        assert events[-1]["payload"]["state"] == "cancelled"
        run = client.get(f"/runs/{second_id}").json()
        assert run["state"] == "cancelled" and run["pending_approvals"] == []
        assert "publish" not in run["outputs"]


def wait_for(client: httpx.Client, run_id: str, name: str) -> dict[str, Any]:
    """Follow the SSE stream until the first event called `name` (bounded by the run's end)."""
    with client.stream("GET", f"/runs/{run_id}/events") as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line.removeprefix("data: "))
                if event["event"] == name:
                    return event
    raise AssertionError(f"run {run_id} ended without {name}")


def test_workspace_and_spec_names_cannot_escape(
    http_api: Callable[..., str], gateway: Gateway, tmp_path: Path
) -> None:
    with httpx.Client(base_url=http_api()) as client:
        # No --workspace root on this server: a client may not pick a workspace at all.
        refused = client.post("/runs", json={"spec": "hello", "workspace": "/tmp"})
        assert refused.status_code == 403
        for name in ("../specs/hello", "/etc/passwd", "scripted/hello"):
            assert client.post("/validate", json={"spec": name}).status_code == 422
    root = tmp_path / "root"
    (root / "inside").mkdir(parents=True)
    gateway.workspace_root = root
    for escape in ("..", "../..", "/tmp", "inside/../../"):
        with pytest.raises(Exception, match="beneath the server's workspace root"):
            gateway.apply("hello", workspace=escape)
    assert gateway.apply("hello", workspace="inside")["state"] in ("queued", "running")


def test_requests_without_the_token_are_refused_off_loopback(
    http_api: Callable[..., str], gateway: Gateway
) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("127.0.0.2")
    with pytest.raises(ValueError, match="bearer token is required"):
        create_app(gateway, host="0.0.0.0", token=None)
    base = http_api(host="127.0.0.2", token="s3cret-token")
    with httpx.Client(base_url=base) as client:
        assert client.get("/health").status_code == 401
        assert client.get("/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.post("/runs", json={"spec": "hello"}).status_code == 401
        assert (
            client.get("/openapi.json", headers={"Authorization": "Basic s3cret-token"}).status_code
            == 401
        )
        ok = client.get("/health", headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200 and ok.json()["ok"] is True
    assert gateway.manager.list() == []  # the refused POST started nothing


def test_the_cli_refuses_a_public_bind_without_a_token(tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "codexflow",
            "api",
            "--host",
            "0.0.0.0",
            "--spec-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert "CODEXFLOW_API_TOKEN" in done.stderr


def test_bodies_are_bounded_and_json_and_hosts_checked(http_api: Callable[..., str]) -> None:
    base = http_api()
    with httpx.Client(base_url=base) as client:
        huge = json.dumps({"text": "x" * (6 * 1024 * 1024)})
        response = client.post(
            "/validate", content=huge, headers={"content-type": "application/json"}
        )
        assert response.status_code == 413

        def chunks() -> Any:  # no Content-Length: counted as it streams in
            for _ in range(7):
                yield b"x" * (1024 * 1024)

        streamed = client.post(
            "/validate", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        plain = client.post(
            "/validate", content=b'{"spec": "hello"}', headers={"content-type": "text/plain"}
        )
        assert plain.status_code == 415
        rebound = client.get("/health", headers={"host": "attacker.example:80"})
        assert rebound.status_code == 421
        assert client.get("/health").status_code == 200


def test_openapi_document_is_checked_in_and_served(http_api: Callable[..., str]) -> None:
    checked_in = (ROOT / "docs" / "openapi.json").read_text(encoding="utf-8")
    assert checked_in == openapi_document(), (
        "docs/openapi.json is stale: codexflow api --print-openapi > docs/openapi.json"
    )
    with httpx.Client(base_url=http_api()) as client:
        served = client.get("/openapi.json").json()
    assert served == json.loads(checked_in)
    paths = set(served["paths"])
    assert {
        "/runs",
        "/runs/{run_id}",
        "/runs/{run_id}/cancel",
        "/runs/{run_id}/approvals/{gate}",
        "/runs/{run_id}/events",
    } <= paths
