"""Every example spec applies end to end offline: scripted replies, real tools, real sandbox."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from codexflow.api import ApplyOptions, apply
from codexflow.errors import SpecError

ROOT = Path(__file__).resolve().parents[1]


def fresh_workspace(tmp_path: Path) -> Path:
    """A git repository holding a copy of examples/calculator."""
    workspace = tmp_path / "calculator"
    shutil.copytree(ROOT / "examples" / "calculator", workspace)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@codexflow.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=workspace, check=True)
    subprocess.run(["git", "add", "-A"], cwd=workspace, check=True)
    subprocess.run([*git, "commit", "-qm", "before"], cwd=workspace, check=True)
    return workspace


def run_example(name: str, tmp_path: Path, **overrides):
    workspace = fresh_workspace(tmp_path)
    settings = {"state_dir": tmp_path / "state", **overrides}
    options = ApplyOptions(
        model="scripted/demo",
        script=ROOT / "specs" / "scripted" / f"{name}.yaml",
        workspace=workspace,
        engine="local",
        **settings,
    )
    return apply(ROOT / "specs" / f"{name}.yaml", options), workspace


def test_refactor_leaves_a_reviewable_commit(tmp_path: Path) -> None:
    result, workspace = run_example("refactor", tmp_path, approve=frozenset({"review"}))
    assert result.status == "succeeded", result.reason
    log = subprocess.run(
        ["git", "log", "--format=%an|%s", "-2"], cwd=workspace, capture_output=True, text=True
    )
    latest, before = log.stdout.strip().splitlines()
    assert (
        latest == "codexflow architect|Refactor calculator: one operand check, a table of operators"
    )
    assert before.endswith("|before")
    changed = subprocess.run(
        ["git", "show", "--name-only", "--format=", "HEAD"],
        cwd=workspace,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert sorted(changed) == ["calculator/ops.py", "calculator/parse.py"]
    assert "_require_number" in (workspace / "calculator" / "ops.py").read_text()
    # The refactored package still passes its own tests.
    tests = subprocess.run(
        ["python3", "-m", "unittest", "discover", "-s", "tests"],
        cwd=workspace,
        capture_output=True,
        text=True,
    )
    assert tests.returncode == 0, tests.stderr
    assert result.outputs["test"] == {"passed": True, "failures": []}
    assert len(result.outputs["refactor"]) == 2  # one output per fan-out item
    audit = [json.loads(line) for line in (result.run_dir / "audit.jsonl").read_text().splitlines()]
    assert "git_commit" in {entry["tool"] for entry in audit}
    # The agents' test runs really ran in the sandbox and passed: a refused or failed run_tests
    # (bubblewrap unable to start, say) would leave the scripted answers above unchanged.
    runs = [entry for entry in audit if entry["tool"] == "run_tests"]
    outcomes = [(entry["step_id"], entry["outcome"], entry["result"][:200]) for entry in runs]
    assert runs and all(outcome == "ok" for _, outcome, _ in outcomes), outcomes
    for entry in runs:
        assert entry["result"].startswith("exit code: 0\n"), entry["result"]
        assert "Ran 5 tests" in entry["result"] and entry["result"].rstrip().endswith("OK")


def test_refactor_gate_denied_headless_keeps_work_and_commits_nothing(tmp_path: Path) -> None:
    result, workspace = run_example("refactor", tmp_path)  # no --approve review, nobody to ask
    assert result.status == "denied"
    assert result.records["review.approval"].status == "denied"
    assert result.records["commit"].status == "skipped"
    assert result.records["test"].status == "succeeded"
    count = subprocess.run(
        ["git", "rev-list", "--count", "HEAD"], cwd=workspace, capture_output=True, text=True
    )
    assert count.stdout.strip() == "1"  # nothing committed without the review


@pytest.mark.parametrize(
    ("name", "artifact"),
    [
        ("research", "docs/research/http-client.md"),
        ("docs", "docs/calculator_ops.md"),
        ("triage", None),
    ],
)
def test_other_examples_apply(name: str, artifact: str | None, tmp_path: Path) -> None:
    result, workspace = run_example(name, tmp_path)
    assert result.status == "succeeded", result.reason
    if artifact:
        assert (workspace / artifact).is_file()
    if name == "triage":
        owners = {report["owner"] for report in result.outputs["summary"]["reports"]}
        assert owners == {"numerics", "api", "security"}


def test_missing_workspace_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="is not a directory"):
        apply(
            ROOT / "specs" / "refactor.yaml",
            ApplyOptions(workspace=tmp_path / "nope", engine="local"),
        )


def test_plan_shows_what_is_cached_after_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from codexflow.cli import main

    spec = str(ROOT / "specs" / "refactor.yaml")
    state = str(tmp_path / "state")
    assert main(["plan", spec, "-m", "scripted/demo", "--state-dir", state, "-f", "json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert "cached" not in before["steps"][0]  # no cache yet: nothing to say
    result, _ = run_example("refactor", tmp_path, approve=frozenset({"review"}))
    assert result.ok
    assert main(["plan", spec, "-m", "scripted/demo", "--state-dir", state, "-f", "json"]) == 0
    after = json.loads(capsys.readouterr().out)
    cached = {step["id"]: step["cached"] for step in after["steps"]}
    assert cached.pop("review.approval") is False  # a gate asks on every run
    assert all(cached.values()), cached
    assert after["estimate"]["calls"] == {"low": 0.0, "high": 0.0}  # nothing left to pay for


def test_runs_lists_history_and_shows_a_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from codexflow.cli import main

    first, _ = run_example("refactor", tmp_path, approve=frozenset({"review"}))
    second, _ = run_example(
        "refactor", tmp_path / "again", approve=frozenset({"review"}), state_dir=tmp_path / "state"
    )
    assert second.executed == 0  # the second run reused every answer
    capsys.readouterr()
    assert main(["runs", "--state-dir", str(tmp_path / "state")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == [second.run_id, first.run_id]  # newest first
    assert "ran 0  cached 10  spent 0 tokens" in lines[0]
    assert "ran 10  cached 0  spent 20247 tokens" in lines[1]
    assert main(["runs", "show", second.run_id[:-2], "--state-dir", str(tmp_path / "state")]) == 0
    report = capsys.readouterr().out
    assert report.startswith(f"# refactor — run {second.run_id}")
    assert "**Reused from the cache:** 20247 tokens" in report
    assert main(["runs", "show", "nope", "--state-dir", str(tmp_path / "state")]) == 2
