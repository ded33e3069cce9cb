"""describe_protection(): which confinement mechanisms work on this machine (for `codexflow doctor`)."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from codexflow.tools.cgroup import memory_cgroup_parent, pids_cgroup_parent
from codexflow.tools.confine import openat2_available
from codexflow.tools.sandbox import Limits, bwrap_works, run_sandboxed
from codexflow.tools.seccomp import DENIED, seccomp_program

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


def probe_sandbox() -> dict[str, str]:
    """What a command inside the sandbox observes: its user namespace and seccomp mode."""
    if not bwrap_works():
        return {}
    script = "readlink /proc/self/ns/user; grep '^Seccomp:' /proc/self/status"
    with tempfile.TemporaryDirectory(prefix="codexflow-doctor-") as scratch:
        try:
            result = run_sandboxed(["sh", "-c", script], Path(scratch), limits=Limits(timeout=20))
        except Exception:  # a probe that cannot run reports nothing, never fails doctor
            return {}
    lines = result.output.splitlines()
    found: dict[str, str] = {}
    if lines and lines[0].startswith("user:["):
        found["user_ns"] = lines[0]
    for line in lines[1:]:
        if line.startswith("Seccomp:"):
            found["seccomp_mode"] = line.split(":", 1)[1].strip()
    return found


def describe_protection() -> dict[str, Any]:
    """A JSON-able report: what protects file and shell tools here, and what does not."""
    bwrap = shutil.which("bwrap")
    working = bwrap_works()
    cgroup = pids_cgroup_parent()
    memory = memory_cgroup_parent()
    root = os.geteuid() == 0
    inside = probe_sandbox()
    try:
        host_ns = os.readlink("/proc/self/ns/user")
    except OSError:
        host_ns = None
    userns = bool(inside.get("user_ns")) and inside.get("user_ns") != host_ns
    seccomp = inside.get("seccomp_mode") == "2"
    return {
        "user_namespace": {
            "present": userns,
            "effect": "a user namespace of its own: no capability inside reaches a host-wide "
            "kernel object"
            if userns
            else "missing: the sandbox shares the host's user namespace",
        },
        "seccomp": {
            "present": seccomp,
            "filter": seccomp_program() is not None,
            "denied": list(DENIED),
            "effect": "key rings, ptrace, bpf, perf, io_uring, mounts, namespaces... fail with EPERM"
            if seccomp
            else "missing: every syscall is open to sandboxed commands",
        },
        "memory_cgroup": {
            "present": memory is not None,
            "path": str(memory[0]) if memory else None,
            "limit_bytes": Limits().memory,
            "effect": "one memory limit for each command's whole process tree, /tmp included"
            if memory
            else "missing: memory is limited per process only (address space)",
        },
        "tmp_size_bytes": Limits().tmp_size,
        "bwrap": {
            "path": bwrap,
            "version": _bwrap_version(bwrap) if bwrap else None,
            "working": working,
            "effect": "shell, git and MCP servers run without network, host pids or host files besides the "
            "workspace (the state dir masked)"
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
