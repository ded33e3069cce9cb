"""The shipped pre-commit hook selects spec files and fails a commit of an invalid one."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]


def hook() -> dict:
    hooks = YAML(typ="safe").load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    (only,) = [h for h in hooks if h["id"] == "codexflow-validate"]
    return only


def run_hook(files: list[str]) -> subprocess.CompletedProcess[str]:
    entry = shlex.split(hook()["entry"])
    assert entry[:2] == ["codexflow", "validate"]
    command = [sys.executable, "-m", "codexflow", *entry[1:], *files]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True)


def test_the_hook_selects_the_specs_and_nothing_else() -> None:
    pattern, exclude = re.compile(hook()["files"]), re.compile(hook()["exclude"])
    tracked = subprocess.run(
        ["git", "ls-files", "*.yaml", "*.yml"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    selected = sorted(p for p in tracked if pattern.search(p) and not exclude.search(p))
    assert selected == sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.yaml"))
    assert pattern.search("team/swarm.yaml") and not pattern.search("specs/scripted/x.yaml")
    assert hook()["language"] == "python" and hook()["types"] == ["yaml"]


def test_the_hook_passes_valid_specs_and_fails_invalid_ones() -> None:
    assert run_hook(["specs/refactor.yaml", "specs/docs.yaml"]).returncode == 0
    failed = run_hook(["specs/refactor.yaml", "tests/fixtures/specs/invalid/broken.yaml"])
    assert failed.returncode == 2
    assert "tests/fixtures/specs/invalid/broken.yaml:15:19:" in failed.stdout
