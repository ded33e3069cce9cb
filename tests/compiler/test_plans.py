"""Every example spec compiles; its plan (text and JSON) is pinned, topology expansions included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from codexflow.cli import main
from codexflow.compiler import compile_spec
from codexflow.compiler.estimate import estimate_plan
from codexflow.compiler.render import render_dot, render_json, render_mermaid, render_text
from codexflow.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "specs").glob("*.yaml"))


def fixed_prices(model: str) -> tuple[float, float] | None:
    # Pinned prices keep snapshots independent of litellm's table.
    return (1e-6, 4e-6) if model.startswith("openai/") else None


def _text(plan, estimate) -> str:
    console = Console(width=140, record=True, color_system=None, force_terminal=False)
    console.print(render_text(plan, estimate))
    return console.export_text()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_plan_text_and_json(path: Path, snapshot) -> None:
    plan = compile_spec(load_spec(path))
    estimate = estimate_plan(plan, fixed_prices)
    assert _text(plan, estimate) == snapshot(name="text")
    assert json.loads(render_json(plan, estimate)) == snapshot(name="json")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_pictures_name_every_step_and_edge(path: Path) -> None:
    plan = compile_spec(load_spec(path))
    mermaid, dot = render_mermaid(plan), render_dot(plan)
    assert mermaid.startswith("flowchart TD")
    assert dot.startswith(f'digraph "{plan.name}"')
    for step in plan.steps:
        assert step.id in mermaid and step.id in dot
    assert mermaid.count("-->") == len(plan.edges)
    assert dot.count("->") == len(plan.edges)


def test_plan_command_formats(repo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "specs/refactor.yaml", "--format", "json", "--set", "target=lib/"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["inputs"]["target"] == "lib/"
    assert "refactor[*]" in [step["id"] for step in data["steps"]]
    assert data["estimate"]["dynamic_steps"] == ["refactor[*]"]
    assert main(["plan", "specs/refactor.yaml", "-f", "mermaid"]) == 0
    assert capsys.readouterr().out.startswith("flowchart TD")
    assert main(["plan", "specs/refactor.yaml"]) == 0
    out = capsys.readouterr().out
    assert "review.approval" in out and "estimate" in out


def test_plan_rejects_bad_inputs(repo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "specs/refactor.yaml", "--set", "taget=x"]) == 2
    assert "unknown input `taget` (did you mean 'target'?)" in capsys.readouterr().err
