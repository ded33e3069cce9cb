"""Session-wide test set-up: paths, and the rule that no test reaches the internet."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"

# litellm must never fetch its price list during tests (codexflow sets this too).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture
def repo_root(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from the repository root so rendered paths are short and stable in snapshots."""
    monkeypatch.chdir(ROOT)
    return ROOT
