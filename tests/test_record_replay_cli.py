"""`apply --record` against a real OpenAI-protocol server, then `--replay` with the server gone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codexflow.cli import main
from tests.support.openai_server import Reply, running_openai_server

# The spec names this variable in `api_key_env`. Its name looks like no secret (it does not end
# in _API_KEY/_TOKEN/...), so only the spec's naming of it marks its value as one to redact.
KEY_ENV = "CODEXFLOW_TEST_KEY"
KEY = "sk-test-secret-value-123"

SPEC = """apiVersion: codexflow/v1
name: recorded
defaults: {{model: openai/test-model, retries: 0}}
providers:
  openai: {{api_base: "{url}", api_key_env: CODEXFLOW_TEST_KEY}}
agents:
  writer: {{role: writer}}
  editor: {{role: reviewer}}
tasks:
  draft: {{agent: writer, prompt: "Write one line about graphs. TOKEN-draft"}}
  edit:
    agent: editor
    depends_on: [draft]
    prompt: "Tighten this line: {{{{ tasks.draft.output }}}} TOKEN-edit"
    output: {{type: object, properties: {{line: {{type: string}}}}, required: [line]}}
"""


def answer(request: dict) -> Reply:
    text = json.dumps(request["messages"])
    if "TOKEN-edit" in text:
        return Reply(content='{"line": "Graphs connect."}', prompt_tokens=40, completion_tokens=6)
    # The model echoes the key: it must reach no output, cache, record, later prompt or cassette.
    return Reply(
        content=f"Graphs connect things, mostly. {KEY}", prompt_tokens=30, completion_tokens=7
    )


def summary(run_root: Path) -> dict:
    (latest,) = sorted(run_root.iterdir())[-1:]
    return json.loads((latest / "summary.json").read_text())


def test_record_then_replay_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    cassette = tmp_path / "run.cassette.yaml"
    spec = tmp_path / "spec.yaml"
    with running_openai_server() as server:
        server.default = answer
        spec.write_text(SPEC.format(url=server.url))
        state = tmp_path / "live"
        code = main(
            [
                "apply",
                str(spec),
                "--no-prefect",
                "--state-dir",
                str(state),
                "--record",
                str(cassette),
            ]
        )
        assert code == 0, capsys.readouterr()
        requests = server.chat_requests()
        assert len(requests) == 2
        # The key was really in use (the headers), and in the second prompt only as redacted.
        assert [r.headers.get("Authorization") for r in requests] == [f"Bearer {KEY}"] * 2
        assert KEY not in json.dumps(requests[1].json)
        assert "mostly. <redacted>" in json.dumps(requests[1].json)
        live = summary(state / "runs")
    text = cassette.read_text()
    assert KEY not in text  # the key never reaches the cassette
    assert "TOKEN-draft" in text and "TOKEN-edit" in text
    assert "mostly. <redacted>" in text  # where the answer held the key
    written = [path for path in state.rglob("*") if path.is_file()]
    assert any(path.suffix == ".json" and "steps" in path.parts for path in written)
    assert [path for path in written if KEY.encode() in path.read_bytes()] == []

    # The server is gone and so is the key: a fresh run answers from the cassette alone.
    monkeypatch.delenv(KEY_ENV)
    replayed_state = tmp_path / "replayed"
    code = main(
        [
            "apply",
            str(spec),
            "--no-prefect",
            "--state-dir",
            str(replayed_state),
            "--replay",
            str(cassette),
        ]
    )
    assert code == 0, capsys.readouterr()
    replayed = summary(replayed_state / "runs")
    steps = {
        path.stem: json.loads(path.read_text())["output"]
        for path in (replayed_state / "runs").glob("*/steps/*.json")
    }
    outputs = {step: steps[step] for step in ("draft", "edit")}
    assert outputs == {
        "draft": "Graphs connect things, mostly. <redacted>",
        "edit": {"line": "Graphs connect."},
    }
    assert [s["prompt_tokens"] for s in replayed["steps"]] == [
        s["prompt_tokens"] for s in live["steps"]
    ]

    # A changed prompt has no recorded exchange: a clear error naming the step.
    spec.write_text(spec.read_text().replace("one line about graphs", "one line about trees"))
    capsys.readouterr()
    code = main(
        [
            "apply",
            str(spec),
            "--no-prefect",
            "--state-dir",
            str(tmp_path / "changed"),
            "--replay",
            str(cassette),
        ]
    )
    assert code == 1
    out = capsys.readouterr()
    assert "no recorded exchange for step 'draft'" in out.out + out.err
