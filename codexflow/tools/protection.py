"""describe_protection(): which confinement mechanisms work on this machine (for `codexflow doctor`)."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from typing import Any

from codexflow.tools.cgroup import pids_cgroup_parent
from codexflow.tools.confine import openat2_available
from codexflow.tools.sandbox import bwrap_works

_SYS_LANDLOCK_CREATE_RULESET = 444
_LANDLOCK_CREATE_RULESET_VERSION = 1


def landlock_abi() -> int | None:
    """The kernel's Landlock ABI version, or None (not compiled in, disabled, or filtered)."""
    libc = ctypes.CDLL(None, use_errno=True)
    version = libc.syscall(
        ctypes.c_long(_SYS_LANDLOCK_CREATE_RULESET), None, ctypes.c_size_t(0),
        ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION),
    )  # fmt: skip
    return int(version) if version > 0 else None


def _bwrap_version(path: str) -> str | None:
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def describe_protection() -> dict[str, Any]:
    """A JSON-able report: what protects file and shell tools here, and what does not."""
    bwrap = shutil.which("bwrap")
    working = bwrap_works()
    cgroup = pids_cgroup_parent()
    root = os.geteuid() == 0
    return {
        "bwrap": {
            "path": bwrap,
            "version": _bwrap_version(bwrap) if bwrap else None,
            "working": working,
            "effect": "shell and git run without network, host pids or host files besides the workspace"
            if working
            else "shell tools refuse to run (unless allow_unsafe)",
        },
        "openat2": openat2_available(),
        "path_resolution": "openat2 RESOLVE_BENEATH"
        if openat2_available()
        else "O_NOFOLLOW fd walk",
        "landlock_abi": landlock_abi(),
        "prlimit": shutil.which("prlimit") is not None,
        "pids_cgroup": str(cgroup) if cgroup else None,
        # RLIMIT_NPROC does not bind root; only a pids cgroup bounds a fork bomb then.
        "process_limit": "pids cgroup"
        if cgroup
        else ("none (running as root)" if root else "RLIMIT_NPROC"),
        "running_as_root": root,
    }
