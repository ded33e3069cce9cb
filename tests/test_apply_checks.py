"""What `apply` refuses or shows before it spends anything: `--approve` typos, the gate's
question (agent, rendered prompt, inputs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from codexflow.api import ApplyOptions, apply
from codexflow.cli import main
from codexflow.errors import SpecError

ROOT = Path(__file__).resolve().parents[1]


def test_an_approve_typo_is_an_option_error_before_any_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    code = main(
        [
            "apply",
            str(ROOT / "specs/refactor.yaml"),
            "--approve",
            "reviw",
            "--no-prefect",
            "--script",
            str(ROOT / "specs/scripted/refactor.yaml"),
            "--model",
            "scripted/demo",
            "--state-dir",
            str(state),
            "--workspace",
            str(tmp_path),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "--approve: `reviw` is not a task, gate or tool of refactor" in err
    assert "did you mean 'review'?" in err
    assert not (state / "runs").exists()  # nothing ran, nothing was recorded


def test_approve_accepts_tasks_gates_and_tools(tmp_path: Path) -> None:
    from codexflow.api import check_approvals, compile, load

    spec = load(ROOT / "specs/refactor.yaml")
    plan = compile(spec)
    check_approvals(spec, plan, ["review", "review.approval", "git_commit", "run_tests"])
    with pytest.raises(SpecError):
        check_approvals(spec, plan, ["git_comit"])


def test_the_gate_question_shows_agent_prompt_and_inputs(tmp_path: Path) -> None:
    asked: list[str] = []

    def ask(question: str) -> bool:
        asked.append(question)
        return False

    workspace = tmp_path / "ws"
    workspace.mkdir()
    options = ApplyOptions(
        model="scripted/demo",
        script=ROOT / "specs/scripted/refactor.yaml",
        workspace=workspace,
        engine="local",
        state_dir=tmp_path / "state",
        ask=ask,
        inputs={"target": "calculator/"},
    )
    apply(ROOT / "specs/refactor.yaml", options)
    gates = [q for q in asked if q.startswith("Approve task `review`")]
    assert len(gates) == 1, asked
    question = gates[0]
    assert "agent: swarm (hierarchical: architect, coder, tester, reviewer)" in question
    assert "model: scripted/demo" in question
    assert "prompt: " in question and "{{" not in question.split("prompt: ", 1)[1]
    assert "inputs: " in question and "target='calculator/'" in question
