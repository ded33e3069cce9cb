"""Prefect's settings, applied before Prefect is first imported: quiet, private, and fast to start."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def prefect_environment(state_dir: Path, verbose: bool = False) -> dict[str, str]:
    """The environment codexflow gives Prefect; a value the user already set always wins.

    Why each one (measured with prefect 3.8.8, see README):
    - PREFECT_HOME under the state dir: Prefect's SQLite history lives with the project instead
      of ~/.prefect, and a test or CI run never touches a user's database.
    - analytics off: nothing leaves the machine unless the spec asks for it.
    - logging at WARNING: per-task console logging cost ~15% of Prefect's CPU.
    - a longer ephemeral start-up timeout: a fresh PREFECT_HOME runs migrations (18 s here).
    - no event persister in a server this process starts: task runs are still recorded (by the
      task-run recorder) and shown in the UI; only the raw event feed is not stored. It halves
      the time a run waits at its end for the embedded server to store its history.
    """
    env = {
        "PREFECT_HOME": str(Path(state_dir).resolve() / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "INFO" if verbose else "WARNING",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "false",
        # The ephemeral server's own log lines would interleave with the live progress.
        "PREFECT_LOGGING_SERVER_LEVEL": "INFO" if verbose else "WARNING",
    }
    return {key: value for key, value in env.items() if key not in os.environ}


def configure_prefect(state_dir: Path, verbose: bool = False) -> None:
    """Set the environment; effective only before `prefect` is imported in this process."""
    os.environ.update(prefect_environment(state_dir, verbose))


def prefect_imported() -> bool:
    return "prefect" in sys.modules


def server_url() -> str | None:
    """The API of a running Prefect server the user pointed us at, or None (embedded mode)."""
    return os.environ.get("PREFECT_API_URL") or None


def ui_url(flow_run_id: str) -> str | None:
    """Link to the flow run in the Prefect UI, when a server (not the embedded one) is used."""
    api = server_url()
    if api is None:
        return None
    base = os.environ.get("PREFECT_UI_URL") or api.rstrip("/").removesuffix("/api")
    return f"{base}/runs/flow-run/{flow_run_id}"
