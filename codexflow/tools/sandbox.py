"""Run a command in bubblewrap with limits, a timeout that kills everything, and capped output."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from codexflow.errors import ToolError
from codexflow.tools.cgroup import MemoryCgroup, PidsCgroup
from codexflow.tools.refusal import ToolRefused
from codexflow.tools.seccomp import seccomp_fd

OUTPUT_CAP = 64 * 1024
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
# /etc entries programs commonly need; shadow, ssh keys, pip/npm credentials stay out.
ETC_FILES = (
    "passwd", "group", "hosts", "nsswitch.conf", "ld.so.cache", "ld.so.conf", "ld.so.conf.d",
    "localtime", "timezone", "alternatives", "ssl", "ca-certificates", "mime.types", "magic",
    "python3", "python3.11", "os-release", "debian_version", "protocols", "services", "terminfo",
)  # fmt: skip


@dataclass(frozen=True)
class Limits:
    """Resource limits for one command: setrlimit (via prlimit) per process; a pids cgroup and
    a memory cgroup for the whole tree where cgroups are writable; a sized /tmp."""

    timeout: float = 300.0
    cpu_seconds: int = 300
    address_space: int = 4 << 30
    file_size: int = 1 << 30
    processes: int = 256
    output_cap: int = OUTPUT_CAP
    memory: int = 4 << 30  # every process of the command together, /tmp's pages included
    tmp_size: int = 1 << 30  # the private /tmp (a tmpfs) holds at most this much


@dataclass(frozen=True)
class ProcessResult:
    """What a sandboxed command did; `output` is stdout+stderr, capped."""

    exit_code: int | None
    output: str
    total_bytes: int
    timed_out: bool
    sandboxed: bool
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"exit code: {self.exit_code}"] if not self.timed_out else []
        lines += self.notes
        return "\n".join([*lines, self.output]).rstrip("\n")


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The only environment a tool process gets: no API keys, no user config."""
    return {"PATH": SAFE_PATH, "HOME": "/tmp", "LANG": "C.UTF-8", **(extra or {})}


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for name in ETC_FILES:
        for path in glob.glob(f"/etc/{name}"):
            args += ["--ro-bind", path, path]
    return args


# When we run as root, uid 0 inside keeps write access (by file mode) to host-wide kernel
# settings such as /proc/sys/kernel/core_pattern: these are mounted read-only, as containers do.
PROC_READ_ONLY = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs")
# Host-wide kernel state a tool has no business reading: the key rings, kernel symbols.
PROC_HIDDEN = ("/proc/keys", "/proc/key-users", "/proc/kallsyms", "/proc/kcore",
               "/proc/timer_list", "/proc/sched_debug")  # fmt: skip
PROTECTED_MASK_SIZE = 64 * 1024


def _proc_read_only() -> list[str]:
    args: list[str] = []
    for path in PROC_READ_ONLY:
        args += ["--ro-bind-try", path, path]
    for path in PROC_HIDDEN:
        if os.path.exists(path):  # bwrap cannot mount over an entry this kernel lacks
            args += ["--ro-bind", "/dev/null", path]
    return args


def _masks(workspace: Path, protected: Iterable[str | Path]) -> list[str]:
    """An empty read-only tmpfs over each protected directory the sandbox would otherwise see."""
    args: list[str] = []
    ws = str(workspace)
    for path in sorted({str(Path(p).resolve()) for p in protected}):
        if path == ws or path.startswith(ws.rstrip("/") + "/"):
            args += ["--size", str(PROTECTED_MASK_SIZE), "--perms", "0555", "--tmpfs", path,
                     "--remount-ro", path]  # fmt: skip
    return args


def bwrap_argv(
    workspace: Path,
    argv: list[str],
    *,
    protected: Iterable[str | Path] = (),
    network: bool = False,
    cwd: str | None = None,
    tmp_size: int = Limits.tmp_size,
    seccomp: int | None = None,
    read_only: Iterable[str] = (),
) -> list[str]:
    """bwrap around argv: the workspace is the only writable place (protected directories in it
    are masked); no network unless granted, no host pids, a user namespace, a sized /tmp, and
    the seccomp program read from the fd `seccomp` when given."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise ToolError("bubblewrap is not installed")
    ws = str(workspace)
    net = [] if network else ["--unshare-net"]
    resolv = ["--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf"] if network else []
    filters = ["--seccomp", str(seccomp)] if seccomp is not None else []
    extra: list[str] = []
    for path in read_only:
        extra += ["--ro-bind", path, path]
    return [
        bwrap,
        "--unshare-user-try", *net, "--unshare-pid", "--unshare-ipc", "--unshare-uts",
        "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
        "--hostname", "sandbox",
        *_system_binds(), *resolv,
        "--proc", "/proc", *_proc_read_only(),
        "--dev", "/dev", "--size", str(tmp_size), "--tmpfs", "/tmp", "--dir", "/var/tmp", *extra,
        "--bind", ws, ws, *_masks(workspace, protected), "--chdir", cwd or ws,
        *filters,
        "--", *argv,
    ]  # fmt: skip


@cache
def bwrap_works() -> bool:
    """Whether bubblewrap is installed and can start the full sandbox here (cached)."""
    if shutil.which("bwrap") is None:
        return False
    fd = seccomp_fd()
    try:
        done = subprocess.run(
            bwrap_argv(Path("/tmp"), ["/bin/true"], seccomp=fd),
            env=clean_env(),
            capture_output=True,
            timeout=20,
            pass_fds=(fd,) if fd is not None else (),
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    finally:
        if fd is not None:
            os.close(fd)
    return done.returncode == 0


def _prlimit_argv(limits: Limits) -> list[str]:
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        return []
    return [
        prlimit,
        f"--cpu={limits.cpu_seconds}",
        f"--as={limits.address_space}",
        f"--fsize={limits.file_size}",
        f"--nproc={limits.processes}",
        "--core=0",
        "--",
    ]


class _CappedReader(threading.Thread):
    """Drains a pipe to the end, keeping only the first and last part (memory stays bounded)."""

    def __init__(self, stream: object, cap: int) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self.head_cap = cap * 3 // 4
        self.tail_cap = cap - self.head_cap

    def run(self) -> None:
        fd = self.stream.fileno()  # type: ignore[attr-defined]
        with contextlib.suppress(OSError, ValueError):
            while chunk := os.read(fd, 1 << 16):
                self.total += len(chunk)
                room = self.head_cap - len(self.head)
                if room > 0:
                    self.head += chunk[:room]
                    chunk = chunk[room:]
                if chunk:
                    self.tail += chunk
                    if len(self.tail) > self.tail_cap:
                        del self.tail[: len(self.tail) - self.tail_cap]

    def text(self) -> str:
        dropped = self.total - len(self.head) - len(self.tail)
        if dropped <= 0:
            return bytes(self.head + self.tail).decode("utf-8", "replace")
        head = bytes(self.head).decode("utf-8", "replace")
        tail = bytes(self.tail).decode("utf-8", "replace")
        return f"{head}\n[... truncated {dropped} bytes ...]\n{tail}"


def run_sandboxed(
    argv: list[str],
    workspace: Path,
    *,
    limits: Limits | None = None,
    allow_unsafe: bool = False,
    env: dict[str, str] | None = None,
    protected: Iterable[str | Path] = (),
) -> ProcessResult:
    """Run argv (never through a shell) confined to the workspace; refuses without a sandbox
    unless allow_unsafe. Kills the whole process tree at the timeout."""
    limits = limits or Limits()
    workspace = Path(workspace).resolve()
    sandboxed = bwrap_works()
    if not sandboxed and not allow_unsafe:
        raise ToolRefused(
            "refused: bubblewrap is not available, and shell tools do not run unsandboxed"
        )
    if not sandboxed and any(_inside(workspace, p) for p in protected):
        # Unsandboxed, nothing could hide the state dir from the command.
        raise ToolRefused(
            "refused: the state directory is inside the workspace and bubblewrap is not "
            "available to hide it; use a --state-dir outside the workspace"
        )
    with contextlib.ExitStack() as stack:
        filter_fd = seccomp_fd() if sandboxed else None
        if filter_fd is not None:
            stack.callback(os.close, filter_fd)
        command = (
            bwrap_argv(workspace, argv, protected=protected, tmp_size=limits.tmp_size,
                       seccomp=filter_fd)
            if sandboxed
            else list(argv)
        )  # fmt: skip
        command = _prlimit_argv(limits) + command
        groups = _cgroups(limits, stack)
        for group in groups:
            command = group.enter_argv(command)
        pids = next((g for g in groups if isinstance(g, PidsCgroup)), None)
        memory = next((g for g in groups if isinstance(g, MemoryCgroup)), None)
        fds = (filter_fd,) if filter_fd is not None else ()
        result = _run(command, workspace, limits, env, pids, sandboxed, fds)
        if memory is not None and memory.oom_kills():
            result.notes.append(
                f"[the command reached its memory limit of {limits.memory >> 20} MiB]"
            )
        return result


def _inside(workspace: Path, path: str | Path) -> bool:
    real = str(Path(path).resolve())
    return real == str(workspace) or real.startswith(str(workspace).rstrip("/") + "/")


def _cgroups(limits: Limits, stack: contextlib.ExitStack) -> list[PidsCgroup | MemoryCgroup]:
    groups: list[PidsCgroup | MemoryCgroup] = []
    with contextlib.suppress(OSError):
        pids = PidsCgroup(limits.processes)
        stack.callback(pids.remove)
        groups.append(pids)
    with contextlib.suppress(OSError):
        memory = MemoryCgroup(limits.memory)
        stack.callback(memory.remove)
        groups.append(memory)
    return groups


def _run(
    command: list[str],
    workspace: Path,
    limits: Limits,
    env: dict[str, str] | None,
    cgroup: PidsCgroup | None,
    sandboxed: bool,
    pass_fds: tuple[int, ...] = (),
) -> ProcessResult:
    try:
        process = subprocess.Popen(
            command,
            cwd=workspace,
            env=clean_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,  # one group to kill at the timeout
            close_fds=True,
            pass_fds=pass_fds,
        )
    except OSError as exc:
        raise ToolError(f"could not start {command[-1]!r}: {exc.strerror}") from None
    reader = _CappedReader(process.stdout, limits.output_cap)
    reader.start()
    timed_out = False
    notes: list[str] = []
    try:
        process.wait(timeout=limits.timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        notes.append(f"[timed out after {limits.timeout:g} s; the process tree was killed]")
    finally:
        _kill_tree(process, cgroup)
        process.wait()
    # A daemonised grandchild may still hold the pipe (only unsandboxed without a cgroup):
    # then stop waiting for it; the daemon reader thread ends when that process does.
    reader.join(timeout=2)
    if reader.is_alive():
        notes.append("[a background process kept the output open; output after this point is lost]")
    else:
        with contextlib.suppress(OSError, ValueError):
            process.stdout.close()  # type: ignore[union-attr]
    code = None if timed_out else process.returncode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        notes.append(f"[killed by signal {name}]")
    return ProcessResult(code, reader.text(), reader.total, timed_out, sandboxed, notes)


def _kill_tree(process: subprocess.Popen[bytes], cgroup: PidsCgroup | None) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    if cgroup is not None:
        cgroup.kill_all()
    deadline = time.monotonic() + 5
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
