"""Open files strictly beneath the workspace: openat2(RESOLVE_BENEATH) or an O_NOFOLLOW fd-walk.

Every path is resolved by the kernel relative to a directory fd of the workspace, so there is no
check-then-open window for a symlink swap. Writes never follow symlinks and replace the target
with rename(2) inside the same directory fd, so a hard link to an outside file is never written
through.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import posixpath
import secrets
import stat
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from codexflow.errors import ToolError
from codexflow.tools.refusal import ToolRefused

_SYS_OPENAT2 = 437  # the same number on every architecture (unified syscall table)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08

MAX_PATH = 4096
MAX_COMPONENT = 255


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)


def _openat2(dirfd: int, path: str, flags: int, mode: int, resolve: int) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode if flags & os.O_CREAT else 0, resolve)
    fd = _libc.syscall(
        ctypes.c_long(_SYS_OPENAT2),
        ctypes.c_int(dirfd),
        ctypes.c_char_p(os.fsencode(path)),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), path)
    return int(fd)


@cache
def openat2_available() -> bool:
    """Whether this kernel (and any seccomp filter around us) allows openat2."""
    try:
        os.close(_openat2(-100, ".", os.O_PATH | os.O_DIRECTORY, 0, RESOLVE_BENEATH))  # AT_FDCWD
    except OSError:
        return False
    return True


def _escape(path: str) -> ToolRefused:
    return ToolRefused(f"refused: {path!r} is outside the workspace")


class Workspace:
    """The directory an agent's file tools are confined to."""

    def __init__(self, root: Path, *, use_openat2: bool | None = None) -> None:
        self.root = Path(root).resolve()
        # Absolute paths may name the workspace as given or as resolved (through symlinks).
        self._roots = sorted({str(self.root), os.path.abspath(root)}, key=len, reverse=True)
        if not self.root.is_dir():
            raise ToolError(f"workspace {self.root} is not a directory")
        self._openat2 = openat2_available() if use_openat2 is None else use_openat2

    def relpath(self, path: str) -> str:
        """Normalise a model-given path to a clean relative one, refusing what cannot be inside.

        `..` is resolved lexically; that is exact for writes (which follow no symlinks) and, for
        reads, the kernel still checks every symlink met on the way.
        """
        if not isinstance(path, str) or not path:
            raise ToolError("a path is required")
        if "\x00" in path:
            raise ToolRefused("refused: the path contains a NUL byte")
        if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH:
            raise ToolRefused("refused: the path is longer than 4096 bytes")
        if path.startswith("~"):
            raise ToolRefused(
                f"refused: {path!r}: `~` is not expanded; paths are relative to the workspace"
            )
        if path.startswith("/"):
            for root in self._roots:
                if path == root or path.startswith(root + "/"):
                    path = path[len(root) :].lstrip("/") or "."
                    break
            else:
                raise _escape(path)
        normal = posixpath.normpath(path)
        if normal == ".." or normal.startswith("../"):
            raise _escape(path)
        if any(
            len(part.encode("utf-8", "surrogateescape")) > MAX_COMPONENT
            for part in normal.split("/")
        ):
            raise ToolRefused("refused: a path component is longer than 255 bytes")
        return normal

    @contextlib.contextmanager
    def _root_fd(self) -> Iterator[int]:
        fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            yield fd
        finally:
            os.close(fd)

    def _open_beneath(self, rootfd: int, rel: str, flags: int, mode: int, follow: bool) -> int:
        if self._openat2:
            resolve = (
                RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | (0 if follow else RESOLVE_NO_SYMLINKS)
            )
            return _openat2(rootfd, rel, flags, mode, resolve)
        # Fallback: walk one component at a time, refusing every symlink (stricter than openat2).
        parts = [] if rel == "." else rel.split("/")
        current = os.dup(rootfd)
        try:
            for part in parts[:-1]:
                step = os.open(
                    part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=current
                )
                os.close(current)
                current = step
            last = parts[-1] if parts else "."
            return os.open(last, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=current)
        finally:
            os.close(current)

    def open(
        self, path: str, flags: int = os.O_RDONLY, mode: int = 0o644, *, follow: bool = True
    ) -> int:
        """An fd for `path` beneath the workspace; the caller closes it."""
        rel = self.relpath(path)
        with self._root_fd() as rootfd:
            try:
                return self._open_beneath(rootfd, rel, flags, mode, follow)
            except OSError as exc:
                raise self._explain(path, exc) from None

    def _explain(self, path: str, exc: OSError) -> ToolError:
        if exc.errno == errno.EXDEV:
            return _escape(path)
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            return ToolRefused(
                f"refused: {path!r} goes through a symbolic link that is not followed here"
            )
        if exc.errno == errno.ENOTDIR and not self._openat2:
            return ToolRefused(f"refused: {path!r} (a component is not a plain directory)")
        if exc.errno == errno.ENOENT:
            return ToolError(f"{path!r} does not exist")
        if exc.errno == errno.EISDIR:
            return ToolError(f"{path!r} is a directory")
        if exc.errno == errno.ENAMETOOLONG:
            return ToolRefused(f"refused: {path!r} is too long")
        return ToolError(f"{path!r}: {exc.strerror}")

    def read_bytes(self, path: str, limit: int) -> tuple[bytes, int]:
        """Up to `limit` bytes of a regular file, and its full size."""
        fd = self.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise ToolError(f"{path!r} is a directory")
            if not stat.S_ISREG(info.st_mode):
                raise ToolRefused(f"refused: {path!r} is not a regular file")
            if info.st_nlink > 1:
                # Its other name may be outside the workspace; we cannot tell which.
                raise ToolRefused(f"refused: {path!r} is a hard link to a file with other names")
            chunks, left = [], limit
            while left > 0:
                chunk = os.read(fd, min(left, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            return b"".join(chunks), info.st_size
        finally:
            os.close(fd)

    def open_dir(self, path: str, *, create: bool = False, follow: bool = False) -> int:
        """An O_PATH fd of a directory beneath the workspace, creating missing ones if asked."""
        rel = self.relpath(path)
        flags = os.O_PATH | os.O_DIRECTORY
        if not create or rel == ".":
            return self.open(rel, flags, follow=follow)
        with self._root_fd() as rootfd:
            current = os.dup(rootfd)
            try:
                for part in rel.split("/"):
                    try:
                        step = self._open_beneath(current, part, flags, 0, follow=False)
                    except FileNotFoundError:
                        with contextlib.suppress(FileExistsError):
                            os.mkdir(part, 0o755, dir_fd=current)
                        step = self._open_beneath(current, part, flags, 0, follow=False)
                    os.close(current)
                    current = step
            except OSError as exc:
                os.close(current)
                raise self._explain(path, exc) from None
            return current

    def write_bytes(self, path: str, data: bytes) -> None:
        """Replace (or create) a file atomically, following no symlink on the way."""
        rel = self.relpath(path)
        if rel == ".":
            raise ToolError("a file name is required")
        parent, name = posixpath.split(rel)
        dirfd = self.open_dir(parent or ".", create=True)
        temp = f".{name[:200]}.{secrets.token_hex(6)}.cfx-tmp"
        try:
            mode = 0o644
            with contextlib.suppress(OSError):
                old = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                if stat.S_ISDIR(old.st_mode):
                    raise ToolError(f"{path!r} is a directory")
                if stat.S_ISREG(old.st_mode):
                    mode = stat.S_IMODE(old.st_mode) & 0o777
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            fd = self._open_beneath(dirfd, temp, flags, mode, follow=False)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            # rename replaces the directory entry itself: a symlink or hard link there is
            # unlinked, never written through.
            os.rename(temp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dirfd)
            raise self._explain(path, exc) from None
        finally:
            os.close(dirfd)
