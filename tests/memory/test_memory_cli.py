"""`codexflow memory ...` and `codexflow agents`, in-process through `main`, and across runs:
a value one `codexflow apply` process stores is read by an agent of the next process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codexflow.cli import main

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_set_get_list_search_export_import_prune(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = ["--state-dir", str(tmp_path / "state"), "--namespace", "ops"]
    emb = ["--embedding", "hash"]
    assert run(capsys, "memory", "set", "deploy", "docker compose on staging", *state, *emb)[0] == 0
    assert (
        run(capsys, "memory", "set", "limits", '{"max": 3}', "--json-value", *state, *emb)[0] == 0
    )
    assert run(capsys, "memory", "set", "bad", "{nope", "--json-value", *state, *emb)[0] == 2
    code, out, _ = run(capsys, "memory", "get", "deploy", *state)
    assert (code, out) == (0, "docker compose on staging\n")
    code, out, _ = run(capsys, "memory", "get", "limits", "--json", *state)
    assert json.loads(out)["value"] == {"max": 3}
    code, _, err = run(capsys, "memory", "get", "missing", *state)
    assert code == 1 and "no entry `missing` in namespace `ops`" in err
    code, out, _ = run(capsys, "memory", "list", "--json", *state)
    assert [row["key"] for row in json.loads(out)] == ["deploy", "limits"]
    code, out, _ = run(capsys, "memory", "search", "staging docker", "--json", *state, *emb)
    assert json.loads(out)[0]["key"] == "deploy"

    dump = tmp_path / "ops.jsonl"
    assert run(capsys, "memory", "export", "-o", str(dump), *state)[0] == 0
    lines = dump.read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["deploy", "limits"]
    where = ["--state-dir", str(tmp_path / "other"), "--namespace", "ops"]
    other = [*where, *emb]
    code, out, _ = run(capsys, "memory", "import", str(dump), *other)
    assert (code, out.strip()) == (0, "imported 2 entries")
    code, out, _ = run(capsys, "memory", "search", "compose", "--json", *other)
    assert json.loads(out)[0]["key"] == "deploy"
    broken = tmp_path / "broken.jsonl"
    broken.write_text(lines[0] + "\nnot json\n")
    code, _, err = run(capsys, "memory", "import", str(broken), *other)
    assert code == 2 and "broken.jsonl:2:1: not JSON" in err

    code, out, _ = run(capsys, "memory", "prune", "--max-entries", "1", *other)
    assert (code, out.strip()) == (0, "removed 1 entries")
    code, out, _ = run(capsys, "memory", "list", "--json", *where)
    assert [row["key"] for row in json.loads(out)] == ["limits"]  # the newest stays


def test_agents_without_runs_is_an_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "agents", "--state-dir", str(tmp_path))
    assert code == 2 and "no runs recorded" in err


def apply_notebook(state: Path) -> dict[str, str]:
    """One `codexflow apply` process of specs/notebook.yaml; its tool results by tool name."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable, "-m", "codexflow", "apply", str(ROOT / "specs" / "notebook.yaml"),
        "--model", "scripted/demo", "--script", str(ROOT / "specs" / "scripted" / "notebook.yaml"),
        "--state-dir", str(state), "--no-prefect",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = done.stdout.split("run record: ", 1)[1].split()[0]
    calls = [json.loads(line) for line in (Path(run_dir) / "audit.jsonl").read_text().splitlines()]
    return {call["tool"]: call["result"] for call in calls}


def test_a_value_stored_in_one_apply_is_read_in_the_next(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lesson = "Tag a release only after the changelog lists every merged change."
    first = apply_notebook(tmp_path)
    assert first["memory_get"] == "no memory under 'lesson'"
    assert first["memory_store"] == "stored lesson" and first["memory_note"] == "noted"
    second = apply_notebook(tmp_path)  # another process: only the database and Chroma remain
    assert second["memory_get"] == lesson
    assert json.loads(second["memory_search"])[0]["key"] == "lesson"

    code, out, _ = run(
        capsys, "memory", "get", "lesson", "--spec", str(ROOT / "specs" / "notebook.yaml"),
        "--state-dir", str(tmp_path),
    )  # fmt: skip
    assert (code, out.strip()) == (0, lesson)
    code, out, _ = run(capsys, "agents", "--state-dir", str(tmp_path), "--json")
    report = json.loads(out)
    assert report["spec"] == "notebook" and report["status"] == "succeeded"
    agents = {row["agent"]: row for row in report["agents"]}
    assert {name: row["state"] for name, row in agents.items()} == {
        "reader": "terminated",
        "scribe": "terminated",
    }
    assert list(agents["reader"]["transitions"]) == ["created", "running", "idle", "terminated"]
    assert agents["scribe"]["prompt_tokens"] + agents["scribe"]["completion_tokens"] == 684
    assert [(n["agent"], n["kind"]) for n in report["notes"]] == [("scribe", "conversation")]
