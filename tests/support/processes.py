"""Helpers for the servers the tests start: a free loopback port, and stopping a process group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_group(
    process: subprocess.Popen[bytes], stop: int = signal.SIGTERM, wait: float = 20
) -> None:
    """`stop` to the process's whole group (started with start_new_session), then SIGKILL if it
    has not ended within `wait` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, stop)
    try:
        process.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
