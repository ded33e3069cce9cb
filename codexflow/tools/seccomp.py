"""A classic-BPF seccomp filter for the sandbox: syscalls a coding tool never needs fail with EPERM.

bubblewrap loads it (`--seccomp FD`) just before it executes the command, after it has set up
its namespaces and mounts. The program is small enough to assemble here with `struct`; no
libseccomp binding is needed (Debian's python3-seccomp serves only the system Python).
"""

from __future__ import annotations

import errno
import os
import platform
import struct

# struct sock_filter {u16 code; u8 jt; u8 jf; u32 k;}
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K

RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
_X32_BIT = 0x40000000
_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
# clone(2) flags that make namespaces; clone3 passes them in memory a filter cannot read, so it
# fails with ENOSYS and libc falls back to clone, whose flags are checked.
CLONE_NAMESPACES = 0x7E020000
_ARG0_LOW = 16  # args[0], low 32 bits (little-endian)

# Offsets in struct seccomp_data {int nr; u32 arch; u64 ip; u64 args[6];}
_NR, _ARCH = 0, 4

# Denied: the kernel keyring, tracing other processes, BPF and perf, io_uring (it bypasses
# syscall filtering), loading kernels or modules, mounts and namespaces (bubblewrap has made
# its own by then), reading other processes' memory, handle-based opens, clocks, swap, reboot.
DENIED = (
    "keyctl", "add_key", "request_key", "ptrace", "process_vm_readv", "process_vm_writev",
    "bpf", "perf_event_open", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsmount",
    "fsconfig", "fspick", "unshare", "setns", "userfaultfd", "open_by_handle_at",
    "name_to_handle_at", "fanotify_init", "lookup_dcookie", "syslog", "quotactl", "acct",
    "swapon", "swapoff", "reboot", "settimeofday", "clock_settime", "clock_adjtime",
    "adjtimex", "iopl", "ioperm", "vhangup",
)  # fmt: skip

_X86_64 = {
    "keyctl": 250, "add_key": 248, "request_key": 249, "ptrace": 101,
    "process_vm_readv": 310, "process_vm_writev": 311, "bpf": 321, "perf_event_open": 298,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "clone": 56, "clone3": 435, "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
    "delete_module": 176, "mount": 165, "umount2": 166, "pivot_root": 155, "move_mount": 429,
    "open_tree": 428, "fsopen": 430, "fsmount": 432, "fsconfig": 431, "fspick": 433,
    "unshare": 272, "setns": 308, "userfaultfd": 323, "open_by_handle_at": 304,
    "name_to_handle_at": 303, "fanotify_init": 300, "lookup_dcookie": 212, "syslog": 103,
    "quotactl": 179, "acct": 163, "swapon": 167, "swapoff": 168, "reboot": 169,
    "settimeofday": 164, "clock_settime": 227, "clock_adjtime": 305, "adjtimex": 159,
    "iopl": 172, "ioperm": 173, "vhangup": 153, "personality": 135,
}  # fmt: skip

_AARCH64 = {
    "keyctl": 219, "add_key": 217, "request_key": 218, "ptrace": 117,
    "process_vm_readv": 270, "process_vm_writev": 271, "bpf": 280, "perf_event_open": 241,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "clone": 220, "clone3": 435, "kexec_load": 104, "kexec_file_load": 294, "init_module": 105, "finit_module": 273,
    "delete_module": 106, "mount": 40, "umount2": 39, "pivot_root": 41, "move_mount": 429,
    "open_tree": 428, "fsopen": 430, "fsmount": 432, "fsconfig": 431, "fspick": 433,
    "unshare": 97, "setns": 268, "userfaultfd": 282, "open_by_handle_at": 265,
    "name_to_handle_at": 264, "fanotify_init": 262, "lookup_dcookie": 18, "syslog": 116,
    "quotactl": 60, "acct": 89, "swapon": 224, "swapoff": 225, "reboot": 142,
    "settimeofday": 170, "clock_settime": 112, "clock_adjtime": 266, "adjtimex": 171,
    "vhangup": 58, "personality": 92,
}  # fmt: skip

# machine -> (AUDIT_ARCH_*, syscall numbers, whether the x32 ABI exists)
_ARCHES = {
    "x86_64": (0xC000003E, _X86_64, True),
    "aarch64": (0xC00000B7, _AARCH64, False),
}


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def seccomp_program(machine: str | None = None) -> bytes | None:
    """The compiled filter for this machine's architecture, or None where we have no table.

    Another architecture's syscalls (i386 via int 0x80 on x86_64) kill the process: their
    numbers differ, so a deny list by number would not hold for them.
    """
    arch = _ARCHES.get(machine or platform.machine())
    if arch is None:
        return None
    audit_arch, numbers, has_x32 = arch
    denied = sorted({numbers[name] for name in DENIED if name in numbers})
    checks = [("jge", _X32_BIT)] if has_x32 else []
    checks += [("jeq", nr) for nr in denied]
    head = [
        _insn(_LD_W_ABS, 0, 0, _ARCH),
        _insn(_JEQ_K, 1, 0, audit_arch),
        _insn(_RET_K, 0, 0, RET_KILL_PROCESS),
        _insn(_LD_W_ABS, 0, 0, _NR),
        # clone3 -> ENOSYS
        _insn(_JEQ_K, 0, 1, numbers["clone3"]),
        _insn(_RET_K, 0, 0, RET_ERRNO | errno.ENOSYS),
    ]
    # Each check jumps forward to the shared EPERM return; the clone check follows them.
    # Layout after the head: checks..., JEQ clone, ALLOW, LD arg0, JSET ns, ALLOW, DENY.
    body = []
    n = len(checks)
    for index, (kind, value) in enumerate(checks):
        to_deny = (n - index - 1) + 5  # the checks left, then the 5 clone/allow insns
        body.append(_insn(_JGE_K if kind == "jge" else _JEQ_K, to_deny, 0, value))
    tail = [
        _insn(_JEQ_K, 1, 0, numbers["clone"]),
        _insn(_RET_K, 0, 0, RET_ALLOW),
        _insn(_LD_W_ABS, 0, 0, _ARG0_LOW),
        _insn(_JSET_K, 1, 0, CLONE_NAMESPACES),
        _insn(_RET_K, 0, 0, RET_ALLOW),
        _insn(_RET_K, 0, 0, RET_ERRNO | errno.EPERM),
    ]
    return b"".join(head + body + tail)


def seccomp_fd() -> int | None:
    """A readable fd positioned at the start of the program (the caller closes it), or None."""
    program = seccomp_program()
    if program is None:
        return None
    fd = os.memfd_create("codexflow-seccomp", 0)  # no CLOEXEC: bubblewrap reads it
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
