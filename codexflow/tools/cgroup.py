"""Throwaway cgroups per sandboxed command: pids (bounds forks even for root, kills survivors) and
memory (one limit for the whole process tree, tmpfs pages included)."""

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


_MEM_V1 = Path("/sys/fs/cgroup/memory")


def _own_cgroup(controller: str) -> str | None:
    """This process's cgroup path for a v1 controller ('' for the v2 line)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controller in controllers.split(","):
                return path
    return None


@cache
def memory_cgroup_parent() -> tuple[Path, str] | None:
    """(directory, limit file name) where a child cgroup with a memory limit can be made."""
    candidates: list[tuple[Path, str]] = []
    own = _own_cgroup("memory")
    if own is not None and (_MEM_V1 / "cgroup.procs").exists():
        candidates.append((_MEM_V1 / own.lstrip("/"), "memory.limit_in_bytes"))
        candidates.append((_MEM_V1, "memory.limit_in_bytes"))
    with contextlib.suppress(OSError):
        if "memory" in (_V2 / "cgroup.subtree_control").read_text().split():
            candidates.append((_V2, "memory.max"))
    for parent, limit_file in candidates:
        probe = parent / f"codexflow-probe-{uuid.uuid4().hex[:8]}"
        try:
            probe.mkdir()
        except OSError:
            continue
        try:
            (probe / limit_file).write_text(str(64 << 20))
            return parent, limit_file
        except OSError:
            continue
        finally:
            with contextlib.suppress(OSError):
                probe.rmdir()
    return None


class MemoryCgroup:
    """A memory limit shared by every process of one command (and the tmpfs pages they write)."""

    def __init__(self, limit_bytes: int) -> None:
        found = memory_cgroup_parent()
        if found is None:
            raise OSError("no writable memory cgroup")
        parent, limit_file = found
        self.path = parent / f"codexflow-{uuid.uuid4().hex}"
        self.path.mkdir()
        try:
            (self.path / limit_file).write_text(str(limit_bytes))
            # No swap beyond the limit, where the kernel accounts it.
            swap = (
                "memory.memsw.limit_in_bytes"
                if limit_file.startswith("memory.limit")
                else "memory.swap.max"
            )
            with contextlib.suppress(OSError):
                (self.path / swap).write_text(
                    str(limit_bytes) if swap.startswith("memory.memsw") else "0"
                )
        except OSError:
            self.remove()
            raise

    def enter_argv(self, argv: list[str]) -> list[str]:
        procs = str(self.path / "cgroup.procs")
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', procs, *argv]

    def pids(self) -> list[int]:
        with contextlib.suppress(OSError):
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        return []

    def oom_kills(self) -> int:
        """How many processes the kernel killed for this limit (v2 memory.events, v1
        memory.oom_control)."""
        for name in ("memory.events", "memory.oom_control"):
            with contextlib.suppress(OSError, ValueError):
                for line in (self.path / name).read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        return 0

    def remove(self) -> None:
        for _ in range(50):
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.02)
