"""Class 4: the sandbox holds at the kernel: seccomp, a user namespace, hidden key rings, one
memory limit for the whole tree, a sized /tmp, and per-process CPU, memory and file-size limits.

Each expectation is a fact measured on this machine (a syscall's errno, a namespace inode, a
cgroup we can create), never the value a codexflow function reports about itself."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from codexflow.tools.sandbox import Limits, ProcessResult, run_sandboxed

pytestmark = pytest.mark.usefixtures("sandbox")
PYTHON = "/usr/bin/python3"

# (name, x86_64 number, arguments): each must fail with EPERM inside.
SYSCALLS = [
    ("keyctl", 250, (0, 0, 0, 0, 0)),  # KEYCTL_GET_KEYRING_ID
    ("add_key", 248, (0, 0, 0, 0, 0)),
    ("request_key", 249, (0, 0, 0, 0)),
    ("ptrace", 101, (0, 0, 0, 0)),  # PTRACE_TRACEME
    ("bpf", 321, (0, 0, 0)),
    ("perf_event_open", 298, (0, 0, -1, -1, 0)),
    ("io_uring_setup", 425, (1, 0)),
    ("userfaultfd", 323, (0,)),
    ("unshare(CLONE_NEWUSER)", 272, (0x10000000,)),
    ("unshare(CLONE_NEWNS)", 272, (0x00020000,)),
    ("setns", 308, (0, 0)),
    ("mount", 165, (0, 0, 0, 0, 0)),
    ("kexec_load", 246, (0, 0, 0, 0)),
    ("init_module", 175, (0, 0, 0)),
    ("clone(CLONE_NEWUSER)", 56, (0x10000000 | 17, 0, 0, 0, 0)),  # | SIGCHLD
    ("process_vm_readv", 310, (1, 0, 0, 0, 0, 0)),
]

PROBE = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
for line in sys.argv[1:]:
    name, number, *args = line.split(",")
    result = libc.syscall(int(number), *[ctypes.c_long(int(a)) for a in args])
    print(name, result, os.strerror(ctypes.get_errno()) if result < 0 else "ok", flush=True)
"""


def _run(argv: list[str], workspace: Path, **limits: object) -> ProcessResult:
    return run_sandboxed(argv, workspace, limits=Limits(timeout=60, **limits))  # type: ignore[arg-type]


@pytest.mark.skipif(platform.machine() != "x86_64", reason="syscall numbers of x86_64")
def test_syscalls_a_coding_tool_never_needs_fail(workspace: Path) -> None:
    lines = [f"{name},{nr},{','.join(str(a) for a in args)}" for name, nr, args in SYSCALLS]
    result = _run([PYTHON, "-c", PROBE, *lines], workspace)
    assert result.exit_code == 0, result.output
    seen = dict(line.split(" ", 1) for line in result.output.splitlines())
    for name, _, _ in SYSCALLS:
        assert seen[name] == "-1 Operation not permitted", (name, seen[name])
    # clone3 fails with ENOSYS (its flags are out of a filter's reach), so libc uses clone.
    clone3 = _run([PYTHON, "-c", PROBE, "clone3,435,0,0"], workspace)
    assert "Function not implemented" in clone3.output


def test_ordinary_work_still_runs(workspace: Path) -> None:
    script = (
        "import subprocess, threading, tempfile, socket\n"
        "t = threading.Thread(target=print, args=('thread ok',)); t.start(); t.join()\n"
        "print(subprocess.run(['sh', '-c', 'echo child ok'], capture_output=True, text=True).stdout.strip())\n"
        "with tempfile.NamedTemporaryFile() as f: f.write(b'x'); print('tmp ok')\n"
        "a, b = socket.socketpair(); a.send(b'x'); print('socketpair ok', b.recv(1))\n"
        "print(open('/proc/self/status').read().split('Seccomp:')[1].split()[0])\n"
    )
    result = _run([PYTHON, "-c", script], workspace)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:3] == ["thread ok", "child ok", "tmp ok"]
    assert lines[4] == "2"  # the kernel reports a seccomp filter on the process


def _userns_possible() -> bool:
    """Can bubblewrap make a user namespace here at all (asked of bwrap, not of codexflow)?"""
    bwrap = shutil.which("bwrap")
    assert bwrap is not None
    done = subprocess.run(
        [bwrap, "--unshare-user", "--ro-bind", "/", "/", "true"], capture_output=True
    )
    return done.returncode == 0


def test_runs_in_its_own_user_namespace_and_sees_no_key_rings(workspace: Path) -> None:
    if not _userns_possible():
        pytest.skip("this kernel gives bubblewrap no user namespace")
    host = os.readlink("/proc/self/ns/user")
    result = _run(["sh", "-c", "readlink /proc/self/ns/user; cat /proc/keys; echo end"], workspace)
    inside = result.output.splitlines()[0]
    assert inside.startswith("user:[") and inside != host
    with open("/proc/keys") as keys:  # what the host shows: the sandbox shows none of it
        host_keys = [line for line in keys.read().splitlines() if line.strip()]
    for line in host_keys:
        assert line not in result.output


def _own_memory_cgroup() -> Path | None:
    """A v1 or v2 memory cgroup directory we can create children in (probed here)."""
    candidates = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            candidates.append(Path("/sys/fs/cgroup/memory") / path.lstrip("/"))
        if controllers == "" and "memory" in _read("/sys/fs/cgroup/cgroup.subtree_control"):
            candidates.append(Path("/sys/fs/cgroup") / path.lstrip("/"))
    for parent in candidates:
        probe = parent / f"test-probe-{uuid.uuid4().hex[:8]}"
        try:
            probe.mkdir()
        except OSError:
            continue
        probe.rmdir()
        return parent
    return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def test_memory_is_limited_for_the_whole_tree_tmp_included(workspace: Path) -> None:
    if _own_memory_cgroup() is None:
        pytest.skip("no writable memory cgroup on this machine")
    # Four processes of 60 MiB each plus 60 MiB in /tmp: 300 MiB against a 200 MiB limit.
    # Each stays far below the per-process address-space limit; only the cgroup can stop them.
    hog = (f"{PYTHON} -c 'import time; b = bytearray(60 << 20); b[::4096] = b\"x\" * len(b[::4096]); "
           "time.sleep(3); print(\"hog done\")'")  # fmt: skip
    script = (f"head -c {60 << 20} /dev/zero > /tmp/fill && echo filled; "
              f"for i in 1 2 3 4; do {hog} & done; wait")  # fmt: skip
    limited = _run(["sh", "-c", script], workspace, memory=200 << 20, tmp_size=512 << 20)
    assert limited.output.count("hog done") < 4, limited.render()
    assert any("memory limit" in note for note in limited.notes), limited.render()
    # Control: the same work under a limit it fits in.
    roomy = _run(["sh", "-c", script], workspace, memory=1 << 30, tmp_size=512 << 20)
    assert roomy.output.count("hog done") == 4 and "filled" in roomy.output, roomy.render()
    assert not any("memory limit" in n for n in roomy.notes)


def test_tmp_is_sized(workspace: Path) -> None:
    result = _run(["sh", "-c", f"head -c {4 << 20} /dev/zero > /tmp/big; ls -l /tmp/big; df -k /tmp"],
                  workspace, tmp_size=1 << 20)  # fmt: skip
    assert "No space left on device" in result.output, result.output
    assert str(4 << 20) not in result.output


def test_cpu_limit_kills_a_spinning_process(workspace: Path) -> None:
    result = _run([PYTHON, "-c", "while True: pass"], workspace, cpu_seconds=1)
    assert not result.timed_out, result.render()  # the CPU limit, not the 60 s timeout
    # Killed by SIGXCPU or SIGKILL (bubblewrap reports a signal as 128 + its number).
    assert result.exit_code in (128 + 9, 128 + 24, -9, -24), result.render()


def test_address_space_limit_stops_a_large_allocation(workspace: Path) -> None:
    script = "b = bytearray(700 << 20); print('allocated', len(b))"
    limited = _run([PYTHON, "-c", script], workspace, address_space=256 << 20)
    assert "MemoryError" in limited.output and "allocated" not in limited.output
    roomy = _run([PYTHON, "-c", script], workspace, address_space=2 << 30)
    assert "allocated" in roomy.output


def test_file_size_limit_stops_a_large_write(workspace: Path) -> None:
    script = f"head -c {3 << 20} /dev/zero > big.bin; echo rc=$?"
    result = _run(["sh", "-c", script], workspace, file_size=1 << 20)
    assert "rc=0" not in result.output, result.output
    assert (workspace / "big.bin").stat().st_size <= 1 << 20
