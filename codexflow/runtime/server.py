"""`codexflow server`: Prefect's server and UI as a child process that stops when codexflow does."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from codexflow.runtime.prefect_env import prefect_environment

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_SECONDS = 10.0  # what uvicorn gets to close its connections before it is killed


def server_environment(state_dir: Path, host: str, port: int) -> dict[str, str]:
    """The child's environment: codexflow's Prefect settings plus the URLs of this server.

    The UI asks the API at PREFECT_UI_API_URL; unset, it calls 127.0.0.1:4200 whatever the
    port (measured with prefect 3.8.8), so a UI on `--port 4242` could not reach its own API."""
    env = {**os.environ, **prefect_environment(state_dir)}
    env.pop("PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED", None)  # a shared server keeps events
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown}:{port}"
    env["PREFECT_UI_API_URL"] = f"{base}/api"
    env["PREFECT_SERVER_UI_API_URL"] = f"{base}/api"  # the same setting's newer name wins
    env["PREFECT_API_URL"] = f"{base}/api"  # the server's own services call themselves here
    env["PREFECT_UI_URL"] = base
    env["PREFECT_SERVER_API_HOST"] = host
    env["PREFECT_SERVER_API_PORT"] = str(port)
    return env


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the codexflow process dies, even by SIGKILL."""
    with contextlib.suppress(Exception):  # Linux only; elsewhere the signal handlers still work
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def run_server(
    host: str, port: int, state_dir: Path, announce: Callable[[str], None] | None = None
) -> int:
    """Run `prefect server start` until it exits or this process gets SIGINT/SIGTERM/SIGHUP.

    The child runs in its own session, so a signal for this process (Ctrl-C, `kill -INT`) is
    forwarded to the child's whole process group: it gets GRACE_SECONDS to stop, then SIGKILL.
    Returns the exit code to leave with (0 after a requested stop)."""
    env = server_environment(state_dir, host, port)
    Path(env["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    if announce is not None:
        announce(env["PREFECT_UI_URL"])
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", host,
               "--port", str(port)]  # fmt: skip
    stop = threading.Event()
    children: list[subprocess.Popen[bytes]] = []
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGINT)

    for sig in STOP_SIGNALS:  # before the child exists: no signal may leave it orphaned
        signal.signal(sig, on_signal)
    try:
        child = subprocess.Popen(  # in PREFECT_HOME, never the workspace (settings, modules)
            command,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            cwd=env["PREFECT_HOME"],
        )
        children.append(child)
        if stop.is_set():
            on_signal(signal.SIGINT, None)
        while True:
            try:
                code = child.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if stop.is_set():
                    code = _stop(child)
                    break
    finally:
        for child in children:
            if child.poll() is None:  # an exception of ours: never leave the server behind
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGINT)
                _stop(child)
            with contextlib.suppress(ProcessLookupError):  # anything the server itself started
                os.killpg(child.pid, signal.SIGKILL)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if stop.is_set() else code


def _stop(child: subprocess.Popen[bytes]) -> int:
    """SIGINT was sent; wait for the group, then SIGKILL whatever is left of it."""
    try:
        return child.wait(timeout=GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    return child.wait(timeout=GRACE_SECONDS)
