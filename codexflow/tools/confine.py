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
from collections.abc import Iterable, Iterator
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


def open_beneath(
    rootfd: int, rel: str, flags: int, mode: int, *, follow: bool, use_openat2: bool | None = None
) -> int:
    """An fd for `rel` beneath the directory fd `rootfd`: the kernel refuses `..`, absolute
    paths and (unless `follow`) every symlink on the way; raises OSError (EXDEV, ELOOP...)."""
    if use_openat2 is None:
        use_openat2 = openat2_available()
    if use_openat2:
        resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | (0 if follow else RESOLVE_NO_SYMLINKS)
        return _openat2(rootfd, rel, flags, mode, resolve)
    # Fallback: walk one component at a time, refusing every symlink (stricter than openat2).
    parts = [] if rel == "." else rel.split("/")
    if any(part in ("", "..") for part in parts) or rel.startswith("/"):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), rel)
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


def _protected(path: str) -> ToolRefused:
    return ToolRefused(
        f"refused: {path!r} is in codexflow's state directory, which tools may not read or write"
    )


def _escape(path: str) -> ToolRefused:
    return ToolRefused(f"refused: {path!r} is outside the workspace")


class Workspace:
    """The directory an agent's file tools are confined to."""

    def __init__(
        self,
        root: Path,
        *,
        use_openat2: bool | None = None,
        protected: Iterable[str | Path] = (),
    ) -> None:
        self.root = Path(root).resolve()
        # Directories no tool may read or write, wherever they are (codexflow's state dir).
        self.protected = sorted({str(Path(p).resolve()) for p in protected})
        self._protected_rel = [
            os.path.relpath(p, self.root)
            for p in self.protected
            if p == str(self.root) or p.startswith(str(self.root) + "/")
        ]
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
        for prel in self._protected_rel:
            if prel == "." or normal == prel or normal.startswith(prel + "/"):
                raise _protected(path)
        return normal

    def protected_ids(self) -> set[tuple[int, int]]:
        """(device, inode) of each protected directory that exists (a walk skips them)."""
        ids = set()
        for path in self.protected:
            with contextlib.suppress(OSError):
                info = os.stat(path)
                ids.add((info.st_dev, info.st_ino))
        return ids

    def check_fd(self, fd: int, path: str) -> None:
        """Refuse (and close) an fd that the kernel resolved into a protected directory, e.g.
        through a symlink inside the workspace."""
        if not self.protected:
            return
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            inside = self._inside_by_ids(fd)
        else:
            inside = any(real == p or real.startswith(p.rstrip("/") + "/") for p in self.protected)
        if not inside:
            return
        os.close(fd)
        raise _protected(path)

    def _inside_by_ids(self, fd: int) -> bool:
        # Without /proc: walk up from the fd's directory comparing inodes (bounded depth).
        ids = self.protected_ids()
        if not ids:
            return False
        current = os.dup(fd)
        try:
            for _ in range(256):
                info = os.fstat(current)
                if (info.st_dev, info.st_ino) in ids:
                    return True
                if os.path.samestat(info, os.stat("/")):
                    return False
                parent = os.open("..", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=current)
                os.close(current)
                current = parent
        except OSError:
            return True  # cannot tell: refuse
        finally:
            with contextlib.suppress(OSError):
                os.close(current)
        return True

    @contextlib.contextmanager
    def _root_fd(self) -> Iterator[int]:
        fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            yield fd
        finally:
            os.close(fd)

    def _open_beneath(self, rootfd: int, rel: str, flags: int, mode: int, follow: bool) -> int:
        return open_beneath(rootfd, rel, flags, mode, follow=follow, use_openat2=self._openat2)

    def open(
        self, path: str, flags: int = os.O_RDONLY, mode: int = 0o644, *, follow: bool = True
    ) -> int:
        """An fd for `path` beneath the workspace; the caller closes it."""
        rel = self.relpath(path)
        with self._root_fd() as rootfd:
            try:
                fd = self._open_beneath(rootfd, rel, flags, mode, follow)
            except OSError as exc:
                raise self._explain(path, exc) from None
        self.check_fd(fd, path)
        return fd

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
            self.check_fd(current, path)
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


# codexflow's own files (run records, the cache, the audit trail) go through these: beneath a
# root it trusts (the state dir), following no symlink below it, so that a link planted in the
# state dir can never redirect a write (or a read) onto another file of the host.


def _components(relative_path: str) -> list[str]:
    parts = relative_path.split("/")
    if relative_path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise OSError(errno.EXDEV, "not a plain relative path", relative_path)
    return parts


def _dir_beneath(rootfd: int, parts: list[str], *, create: bool) -> int:
    """An O_PATH fd of root/parts..., each component a real directory (mkdir'ed if asked)."""
    flags = os.O_PATH | os.O_DIRECTORY
    current = os.dup(rootfd)
    try:
        for part in parts:
            try:
                step = open_beneath(current, part, flags, 0, follow=False)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=current)
                step = open_beneath(current, part, flags, 0, follow=False)
            os.close(current)
            current = step
    except BaseException:
        os.close(current)
        raise
    return current


@contextlib.contextmanager
def _parent_fd(root: Path, relative_path: str, *, create: bool) -> Iterator[tuple[int, str]]:
    parts = _components(relative_path)
    rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        dirfd = _dir_beneath(rootfd, parts[:-1], create=create)
    finally:
        os.close(rootfd)
    try:
        yield dirfd, parts[-1]
    finally:
        os.close(dirfd)


def make_dirs_beneath(root: Path, relative_path: str) -> None:
    """mkdir -p root/relative_path, refusing any symlink below root (OSError)."""
    rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.close(_dir_beneath(rootfd, _components(relative_path), create=True))
    finally:
        os.close(rootfd)


def write_file_beneath(root: Path, relative_path: str, data: bytes) -> None:
    """Atomically replace root/relative_path with `data` (temp file + rename in the same
    directory fd), creating directories; a symlink or hard link there is replaced, never
    written through. Raises OSError (ELOOP/EXDEV) for a symlink on the way."""
    with _parent_fd(root, relative_path, create=True) as (dirfd, name):
        temp = f".{name[:200]}.{secrets.token_hex(6)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        fd = open_beneath(dirfd, temp, flags, 0o644, follow=False)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.rename(temp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dirfd)
            raise


def append_file_beneath(root: Path, relative_path: str, data: bytes) -> None:
    """Append `data` to root/relative_path (created if missing) with one write(2), flushed to
    the file at once; refuses symlinks, non-regular files and files with other names."""
    with _parent_fd(root, relative_path, create=True) as (dirfd, name):
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
        fd = open_beneath(dirfd, name, flags, 0o644, follow=False)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
                raise OSError(errno.EPERM, "not a regular file with one name", relative_path)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)


def read_file_beneath(root: Path, relative_path: str, limit: int = 64 << 20) -> bytes:
    """Up to `limit` bytes of the regular file root/relative_path, following no symlink."""
    with _parent_fd(root, relative_path, create=False) as (dirfd, name):
        fd = open_beneath(dirfd, name, os.O_RDONLY | os.O_NONBLOCK, 0, follow=False)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EPERM, "not a regular file", relative_path)
            chunks, left = [], limit
            while left > 0:
                chunk = os.read(fd, min(left, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)
