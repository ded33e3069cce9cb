"""The architecture is enforced, not just described: import-linter's contracts must hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_package_type_checks() -> None:
    """mypy (with pydantic's plugin) is clean on the package: a type error fails CI, not review."""
    mypy = Path(sys.executable).with_name("mypy")
    result = subprocess.run([str(mypy), "codexflow"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
