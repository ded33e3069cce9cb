"""Usage errors of the command line: a usage message and exit 2, never an 'internal error'."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from codexflow.cli import main

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "bare": ([], "Usage"),
    "unknown command": (["frob"], "No such command 'frob'"),
    "bad choice": (["plan", "specs/refactor.yaml", "-f", "png"], "'png' is not one of"),
    "unknown option": (["apply", "specs/refactor.yaml", "--dry-run"], "No such option: --dry-run"),
    "missing argument": (["validate"], "Missing argument"),
}


@pytest.mark.parametrize("argv,expected", CASES.values(), ids=CASES.keys())
def test_usage_errors_exit_2_with_a_usage_message(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert expected in text
    assert "internal error" not in text


def test_usage_error_of_the_console_script() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "codexflow", "frob"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "No such command 'frob'" in result.stderr and "internal error" not in result.stderr
