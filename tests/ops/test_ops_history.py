"""`codexflow runs` and `runs show`: from the run records, and from Prefect's API after real runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ops_support import KEY_ENV, PrefectServer, openai_spec, run_cli

from codexflow.cli import main
from tests.support.openai_server import OpenAIServer, Reply

TASKS = """\
  first: {agent: writer, prompt: Say first.}
  second: {agent: writer, prompt: "Say second after {{ tasks.first.output }}.", depends_on: [first]}
"""


def refuse_second(request: dict[str, Any]) -> Reply:
    if "Say second" in str(request["messages"][-1]["content"]):
        return Reply(status=400)
    return Reply(content="answer one", prompt_tokens=100, completion_tokens=20)


def json_out(capsys: pytest.CaptureFixture[str], argv: list[str]) -> Any:
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def local_runs(
    tmp_path: Path, openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Two real runs without Prefect: `good` succeeds, `bad` fails at its second step."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv(KEY_ENV, "sk-ops-test")
    state = tmp_path / "state"
    for name in ("good", "bad"):
        (tmp_path / f"{name}.yaml").write_text(openai_spec(name, openai_server.url, TASKS))
        openai_server.default = Reply(content="fine") if name == "good" else refuse_second
        # --fresh: the cache is content-addressed, and both specs ask the same questions.
        code = main(["apply", str(tmp_path / f"{name}.yaml"), "--no-prefect", "--fresh",
                     "--state-dir", str(state)])  # fmt: skip
        assert code == (0 if name == "good" else 1)
    return state


def test_runs_lists_filters_and_prints_json_from_the_records(
    local_runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    every = json_out(capsys, ["runs", "--state-dir", str(local_runs), "--json"])
    assert [(r["spec"], r["status"], r["source"]) for r in every] == [
        ("bad", "failed", "local"),
        ("good", "succeeded", "local"),
    ]  # newest first
    assert every[0]["tokens"] == 120 and every[0]["start"].startswith("20")
    assert [r["spec"] for r in json_out(capsys, ["runs", "--state-dir", str(local_runs),
                                                 "--spec", "good", "--json"])] == ["good"]  # fmt: skip
    failed = json_out(
        capsys, ["runs", "--status", "failed", "--json", "--state-dir", str(local_runs)]
    )
    assert [r["spec"] for r in failed] == ["bad"]
    assert (
        len(json_out(capsys, ["runs", "--limit", "1", "--json", "--state-dir", str(local_runs)]))
        == 1
    )
    capsys.readouterr()
    assert main(["runs", "--state-dir", str(local_runs)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and " bad  failed " in lines[0]


def test_runs_show_takes_the_state_dir_before_or_after(
    local_runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = json_out(capsys, ["runs", "--state-dir", str(local_runs), "--spec", "bad", "--json"])[
        0
    ]["run_id"]
    before = json_out(
        capsys, ["runs", "--state-dir", str(local_runs), "--json", "show", run_id[:-2]]
    )
    after = json_out(capsys, ["runs", "show", run_id, "--state-dir", str(local_runs), "--json"])
    assert before == after
    steps = {s["id"]: s for s in after["steps"]}
    assert steps["first"]["status"] == "succeeded" and steps["first"]["output"] == "answer one"
    assert steps["second"]["status"] == "failed" and steps["second"]["output"] is None
    capsys.readouterr()
    assert main(["runs", "show", run_id, "--state-dir", str(local_runs)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"# bad — run {run_id}")  # the report, as the Prefect artifact
    assert "- writer: first: succeeded" in text and "answer one" in text
    assert main(["runs", "show", "nope", "--state-dir", str(local_runs)]) == 2


@pytest.mark.slow
def test_runs_reads_the_run_from_prefects_api(
    prefect_server: PrefectServer, openai_server: OpenAIServer, tmp_path: Path
) -> None:
    openai_server.default = Reply(content="fine", prompt_tokens=1000, completion_tokens=500)
    (tmp_path / "spec.yaml").write_text(openai_spec("opshistory", openai_server.url, TASKS))
    env = prefect_server.env(tmp_path / "home", **{KEY_ENV: "sk-ops-test"})
    applied = run_cli(["apply", "spec.yaml", "--state-dir", "state"], env, tmp_path)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    summary = json.loads(next((tmp_path / "state" / "runs").glob("*/summary.json")).read_text())
    assert summary["totals"]["spent_usd"] > 0  # gpt-4o-mini's price from litellm's table
    listed = run_cli(["runs", "--spec", "opshistory", "--json"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert len(runs) == 1, runs
    run = runs[0]
    assert run["source"] == "prefect" and run["status"] == "succeeded"
    assert run["state"] == "Completed"
    assert run["flow_run_id"] == summary["prefect_flow_run_id"]
    assert run["tokens"] == summary["totals"]["spent_tokens"] == 3000
    assert run["cost_usd"] == pytest.approx(summary["totals"]["spent_usd"], abs=1e-4)
    assert run["ui_url"].endswith(f"/runs/flow-run/{run['flow_run_id']}")
    text = run_cli(["runs"], env, tmp_path).stdout
    assert f"prefect {run['flow_run_id']}" in text and "succeeded" in text
    shown = run_cli(["runs", "show", run["flow_run_id"][:8], "--json"], env, tmp_path)
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert [s["name"] for s in detail["steps"]] == ["writer: first", "writer: second"]
    assert [s["tokens"] for s in detail["steps"]] == [1500, 1500]
    assert all(s["state"] == "Completed" for s in detail["steps"])
    assert detail["report"].startswith("# opshistory — run")
    assert run_cli(["runs", "--status", "failed", "--spec", "opshistory", "--json"], env,
                   tmp_path).stdout.strip() == "[]"  # fmt: skip
    by_state = run_cli(["runs", "--status", "Completed", "--spec", "opshistory", "--json"], env,
                       tmp_path)  # fmt: skip
    assert [r["flow_run_id"] for r in json.loads(by_state.stdout)] == [run["flow_run_id"]]
    local = run_cli(["runs", "--local", "--state-dir", "state", "--json"], env, tmp_path)
    assert [r["source"] for r in json.loads(local.stdout)] == ["local"]
