"""A throwaway pids cgroup per sandboxed command: bounds forks even for root, and kills survivors."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from functools import cache
from pathlib import Path

_V1 = Path("/sys/fs/cgroup/pids")
_V2 = Path("/sys/fs/cgroup")


@cache
def pids_cgroup_parent() -> Path | None:
    """A cgroup directory where we may create children with a `pids.max`, if there is one."""
    candidates = []
    if (_V1 / "cgroup.procs").exists():
        candidates.append(_V1)
    controllers = _V2 / "cgroup.subtree_control"
    with contextlib.suppress(OSError):
        if "pids" in controllers.read_text().split():
            candidates.append(_V2)
    for parent in candidates:
        probe = parent / f"codexflow-probe-{uuid.uuid4().hex[:8]}"
        try:
            probe.mkdir()
        except OSError:
            continue
        try:
            (probe / "pids.max").write_text("8")
            return parent
        except OSError:
            continue
        finally:
            with contextlib.suppress(OSError):
                probe.rmdir()
    return None


class PidsCgroup:
    """Create with a process limit; `enter_argv` makes a command join it before anything else runs."""

    def __init__(self, max_pids: int) -> None:
        parent = pids_cgroup_parent()
        if parent is None:
            raise OSError("no writable pids cgroup")
        self.path = parent / f"codexflow-{uuid.uuid4().hex}"
        self.path.mkdir()
        (self.path / "pids.max").write_text(str(max_pids))

    def enter_argv(self, argv: list[str]) -> list[str]:
        # sh joins the cgroup, then execs the command: nothing is forked outside the limit.
        procs = str(self.path / "cgroup.procs")
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', procs, *argv]

    def pids(self) -> list[int]:
        with contextlib.suppress(OSError):
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        return []

    def kill_all(self, deadline: float = 5.0) -> int:
        """SIGKILL every member until none is left (bounded); returns how many remained."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            members = self.pids()
            if not members:
                return 0
            for pid in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        return len(self.pids())

    def remove(self) -> None:
        self.kill_all()
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.02)
