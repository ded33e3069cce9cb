"""Operations tests: one real Prefect server (UI, events, automations) for the whole session."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ops_support import (  # noqa: E402
    PrefectServer,
    free_port,
    start_prefect_server,
    stop_group,
    wait_healthy,
)

from tests.support.openai_server import openai_server  # noqa: E402, F401  (the fixture)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """One Prefect server on 127.0.0.1 for the session: its own PREFECT_HOME, UI, event feed."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    log = home / "server.log"
    proc = start_prefect_server(home, port, log)
    url = f"http://127.0.0.1:{port}/api"
    try:
        wait_healthy(url, proc, log)
        yield PrefectServer(url, home, log)
    finally:
        stop_group(proc)
