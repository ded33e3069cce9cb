"""Session-wide test set-up: paths, and the rule that no test reaches the internet."""

from __future__ import annotations

import os
from collections.abc import Iterator
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


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of one real Prefect server on 127.0.0.1 shared by the whole session."""
    from tests.support.prefect_server import running_prefect_server

    with running_prefect_server(tmp_path_factory.mktemp("prefect-server")) as url:
        yield url
