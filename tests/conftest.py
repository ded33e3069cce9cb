"""Session-wide test set-up: paths, the rule that no test reaches the internet, and no silent
skip of a promised protection on CI."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
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


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1 for the session (tests/support/postgres_server.py).
    Skipped where PostgreSQL is not installed, except on CI, where `.ci/run` installs it: there a
    missing server fails, since the README says memory works on PostgreSQL."""
    import shutil
    import tempfile

    from tests.support.postgres_server import postgres_bin, running_postgres

    if postgres_bin() is None:
        message = "PostgreSQL is not installed (Debian: apt-get install postgresql)"
        if on_ci():
            pytest.fail(f"{message}; .ci/run installs it", pytrace=False)
        pytest.skip(message)
    # Not under pytest's tmp dir: that is private to root, and the server runs as `postgres`.
    directory = Path(tempfile.mkdtemp(prefix="codexflow-pg-"))
    try:
        with running_postgres(directory) as url:
            yield url
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def on_ci() -> bool:
    """CI sets CI=true (as GitHub Actions, GitLab and `.ci/run` do)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On CI a skipped `requires_protection` test fails: a protection the README promises is
    missing on the CI machine, and a skip there would pass unseen."""
    report = yield
    protected = item.get_closest_marker("requires_protection") is not None
    if report.skipped and not hasattr(report, "wasxfail") and protected and on_ci():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid}: skipped on CI, but it guards a protection the README promises: "
            f"{reason} (make the protection work on the CI machine; see .ci/run)"
        )
    return report
