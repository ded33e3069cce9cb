"""Every example spec is valid; every invalid fixture fails with pinned, located messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from codexflow.cli import main
from codexflow.errors import SpecError
from codexflow.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
VALID = sorted((ROOT / "tests/fixtures/specs/valid").glob("*.yaml")) + sorted(
    (ROOT / "specs").glob("*.yaml")
)
INVALID = sorted((ROOT / "tests/fixtures/specs/invalid").glob("*.yaml"))


def test_there_is_a_real_corpus() -> None:
    assert len(INVALID) >= 30
    assert {p.name for p in (ROOT / "specs").glob("*.yaml")} >= {
        "refactor.yaml",
        "research.yaml",
        "docs.yaml",
        "triage.yaml",
    }


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_specs_load(path: Path) -> None:
    spec = load_spec(path)
    assert spec.api_version == "codexflow/v1"
    assert spec.tasks


@pytest.mark.parametrize("path", sorted((ROOT / "specs").glob("*.yaml")), ids=lambda p: p.name)
def test_example_specs_point_editors_at_the_schema(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=../schemas/swarm.schema.json"


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_specs_are_rejected_with_located_messages(
    path: Path, repo_root: Path, capsys: pytest.CaptureFixture[str], snapshot
) -> None:
    relative = path.relative_to(repo_root)
    with pytest.raises(SpecError) as raised:
        load_spec(relative)
    rendered = [issue.render() for issue in raised.value.issues]
    assert rendered, "a rejected spec must say why"
    for issue in raised.value.issues:
        assert issue.path == str(relative)
        assert issue.line >= 1 and issue.col >= 1
    assert rendered == snapshot

    assert main(["validate", str(relative)]) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert f"{relative}:{raised.value.issues[0].line}:{raised.value.issues[0].col}:" in out


def test_several_problems_are_all_reported(repo_root: Path) -> None:
    with pytest.raises(SpecError) as raised:
        load_spec("tests/fixtures/specs/invalid/several-problems.yaml")
    messages = "\n".join(issue.render() for issue in raised.value.issues)
    # One file, five different problems: an unknown tool, an unknown key, an unknown agent,
    # an unknown input, a YAML 1.1 boolean and a cycle.
    assert "unknown tool `run_test`" in messages
    assert "unknown key `replica`" in messages and "did you mean 'replicas'" in messages
    assert "agent `reviwer` is not an agent" in messages
    assert "unknown input `target`" in messages
    assert "expected true or false, got the string 'off'" in messages
    assert (
        "dependency cycle: write -> check -> write" in messages
        or "dependency cycle: check -> write -> check" in messages
    )
    assert len(raised.value.issues) >= 6


def test_exact_positions_of_typical_mistakes(repo_root: Path) -> None:
    cases = {
        "unknown-agent.yaml": (9, 12, "tasks.review.agent"),
        "yaml11-boolean.yaml": (9, 15, "tasks.write.approval"),
        "duplicate-keys.yaml": (9, 5, ""),
        "tabs.yaml": (4, 1, ""),
        "template-syntax.yaml": (11, 1, "tasks.write.prompt"),  # the line inside the block scalar
        "unknown-top-key.yaml": (3, 1, "agnets"),
    }
    for name, (line, col, loc) in cases.items():
        with pytest.raises(SpecError) as raised:
            load_spec(f"tests/fixtures/specs/invalid/{name}")
        first = raised.value.issues[0]
        assert (first.line, first.col, first.loc) == (line, col, loc), name
