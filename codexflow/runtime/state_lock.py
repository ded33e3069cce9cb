"""One apply per state dir: an flock on `<state_dir>/apply.lock`, released by the kernel on death."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from codexflow.errors import RunError

LOCK_NAME = "apply.lock"


class StateBusy(RunError):
    """Another apply holds the state dir and the caller chose not to wait."""


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""
    return f" (pid {text})" if text else ""


@contextlib.contextmanager
def state_lock(
    state_dir: Path,
    *,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
    poll: float = 0.2,
) -> Iterator[None]:
    """Hold the state dir for one apply. A second apply waits (saying so once through
    `on_wait`) or, with `wait=False`, raises StateBusy. The kernel drops an flock when its
    process dies, however it dies, so a killed apply never blocks the next one."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                message = (
                    f"another codexflow apply is using {state_dir}{_holder(path)}; "
                    "two applies on one state dir would run and pay for the same steps twice"
                )
                if not wait:
                    raise StateBusy(
                        f"{message} (wait for it, drop --no-wait to queue behind it, "
                        "or give this run its own --state-dir)"
                    ) from None
                if not told and on_wait is not None:
                    on_wait(f"{message}: waiting for it to finish (Ctrl-C to give up)")
                    told = True
                # A blocking flock could not be interrupted cleanly by Ctrl-C in every
                # context (a worker thread); polling keeps the wait responsive.
                time.sleep(poll)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the flock
