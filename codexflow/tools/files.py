"""File built-ins: read_file, write_file, edit_file, list_files, grep (all confined to the workspace)."""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from collections.abc import Generator
from functools import cache

import regex

from codexflow.errors import ToolError
from codexflow.tools.confine import Workspace
from codexflow.tools.context import ToolContext
from codexflow.tools.refusal import ToolRefused

READ_LIMIT = 1 << 20  # bytes read from one file; the model sees at most OUTPUT_LIMIT of it
OUTPUT_LIMIT = 64 * 1024
LIST_LIMIT = 1000
GREP_FILE_LIMIT = 2 << 20
SKIP_DIRS = {".git", "__pycache__", "node_modules", ".venv"}
# A model's pattern runs in-process: it gets this much time in all (the `regex` engine checks
# its timeout while matching, so even a catastrophically backtracking pattern stops).
GREP_SECONDS = 5.0
PATTERN_LIMIT = 1000


def workspace_of(ctx: ToolContext) -> Workspace:
    return Workspace(ctx.workspace, protected=ctx.protected)


@cache
def _glob_regex(pattern: str) -> regex.Pattern[str]:
    # `**` crosses directories, `*` and `?` do not: the usual meaning, which fnmatch lacks.
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return regex.compile("".join(out) + r"\Z", regex.V0)


def glob_match(rel: str, pattern: str) -> bool:
    pattern = pattern.removeprefix("./")
    if pattern.endswith("/"):
        pattern += "**"
    if len(pattern) > PATTERN_LIMIT:
        raise ToolError(f"the glob is longer than {PATTERN_LIMIT} characters")
    try:
        return _glob_regex(pattern).match(rel, timeout=1.0) is not None
    except TimeoutError:
        raise ToolError("the glob took too long to match; use fewer `*`") from None


def check_writable(ctx: ToolContext, workspace: Workspace, path: str) -> str:
    """The normalised path, if this agent may write it."""
    rel = workspace.relpath(path)
    if ".git" in rel.split("/"):
        raise ToolRefused(f"refused: {path!r} is inside .git (use the git tools)")
    if ctx.writable is not None and not any(glob_match(rel, g) for g in ctx.writable):
        allowed = ", ".join(ctx.writable) or "nothing"
        raise ToolRefused(f"refused: {path!r} is not writable by {ctx.agent} (writable: {allowed})")
    return rel


def cap_text(text: str, limit: int = OUTPUT_LIMIT) -> str:
    data = text.encode("utf-8", "surrogateescape")
    if len(data) <= limit:
        return text
    head = data[:limit].decode("utf-8", "ignore")
    return f"{head}\n[... truncated {len(data) - limit} bytes ...]"


def read_file(ctx: ToolContext, path: str) -> str:
    """Read a text file of the workspace."""
    data, size = workspace_of(ctx).read_bytes(path, READ_LIMIT)
    text = data.decode("utf-8", "replace")
    if size > len(data):
        text += f"\n[... truncated {size - len(data)} bytes ...]"
    return cap_text(text)


def write_file(ctx: ToolContext, path: str, content: str) -> str:
    """Create or overwrite a file of the workspace with the given content."""
    workspace = workspace_of(ctx)
    rel = check_writable(ctx, workspace, path)
    data = content.encode("utf-8")
    workspace.write_bytes(rel, data)
    return f"wrote {len(data)} bytes to {rel}"


def edit_file(ctx: ToolContext, path: str, search: str, replace: str) -> str:
    """Replace the one exact occurrence of `search` in a file with `replace`."""
    workspace = workspace_of(ctx)
    rel = check_writable(ctx, workspace, path)
    if not search:
        raise ToolError("`search` must not be empty")
    data, size = workspace.read_bytes(rel, READ_LIMIT + 1)
    if size > READ_LIMIT:
        raise ToolError(f"{rel} is larger than {READ_LIMIT} bytes; edit refused")
    text = data.decode("utf-8")
    count = text.count(search)
    if count == 0:
        raise ToolError(
            f"the search text was not found in {rel}; nothing changed (read the file again?)"
        )
    if count > 1:
        raise ToolError(
            f"the search text occurs {count} times in {rel}; add context so it occurs once"
        )
    workspace.write_bytes(rel, text.replace(search, replace, 1).encode("utf-8"))
    return f"edited {rel}"


Walk = Generator[tuple[str, int, list[str], list[str]], None, None]


def _walk(workspace: Workspace, path: str) -> Walk:
    """(relative dir, dir fd, dirnames, filenames) beneath `path`, never following symlinks."""
    rel = workspace.relpath(path)
    start = workspace.open_dir(rel, follow=True)
    try:
        base = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=start)
    finally:
        os.close(start)
    walker = os.fwalk(".", dir_fd=base, follow_symlinks=False)
    hidden = workspace.protected_ids()
    try:
        for top, dirs, files, dirfd in walker:
            dirs[:] = sorted(
                d for d in dirs if d not in SKIP_DIRS and not _is_hidden(dirfd, d, hidden)
            )
            prefix = posixpath_join(rel, top)
            yield prefix, dirfd, dirs, sorted(files)
    finally:
        walker.close()  # type: ignore[attr-defined]  # os.fwalk returns a generator; close its fds now
        os.close(base)


def _is_hidden(dirfd: int, name: str, hidden: set[tuple[int, int]]) -> bool:
    if not hidden:
        return False
    try:
        info = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except OSError:
        return True
    return (info.st_dev, info.st_ino) in hidden


def posixpath_join(rel: str, top: str) -> str:
    top = "" if top == "." else top.removeprefix("./")
    parts = [p for p in (rel if rel != "." else "", top) if p]
    return "/".join(parts)


def list_files(ctx: ToolContext, path: str = ".", pattern: str | None = None) -> str:
    """List files under a directory of the workspace (recursively), optionally filtered by a glob."""
    walk = _walk(workspace_of(ctx), path)
    with contextlib.closing(walk):
        return _list(walk, pattern)


def _list(walk: Walk, pattern: str | None) -> str:
    out: list[str] = []
    for prefix, _fd, _dirs, files in walk:
        for name in files:
            rel = f"{prefix}/{name}" if prefix else name
            if pattern and not (glob_match(rel, pattern) or glob_match(name, pattern)):
                continue
            out.append(rel)
            if len(out) >= LIST_LIMIT:
                return "\n".join([*sorted(out), f"[... stopped after {LIST_LIMIT} entries ...]"])
    return "\n".join(sorted(out)) if out else "(no files)"


def grep(
    ctx: ToolContext,
    pattern: str,
    path: str = ".",
    glob: str | None = None,
    ignore_case: bool = False,
) -> str:
    """Search files of the workspace for a regular expression; prints path:line: text."""
    if len(pattern) > PATTERN_LIMIT:
        raise ToolError(f"the pattern is longer than {PATTERN_LIMIT} characters")
    try:
        compiled = regex.compile(pattern, regex.V0 | (regex.IGNORECASE if ignore_case else 0))
    except (regex.error, re.error, ValueError, OverflowError, RecursionError) as exc:
        raise ToolError(f"invalid regular expression: {exc}") from None
    walk = _walk(workspace_of(ctx), path)
    with contextlib.closing(walk):
        return _grep(walk, compiled, glob, time.monotonic() + GREP_SECONDS)


def _grep(walk: Walk, compiled: regex.Pattern[str], glob: str | None, deadline: float) -> str:
    hits: list[str] = []
    size = 0
    for prefix, dirfd, _dirs, files in walk:
        for name in files:
            rel = f"{prefix}/{name}" if prefix else name
            if glob and not (glob_match(rel, glob) or glob_match(name, glob)):
                continue
            for number, line in _lines(dirfd, name):
                left = deadline - time.monotonic()
                try:
                    if left <= 0:
                        raise TimeoutError
                    found = compiled.search(line, timeout=left, concurrent=True)
                except TimeoutError:
                    hits.append(f"[... stopped: the search took longer than {GREP_SECONDS:g} s "
                                f"(simplify the pattern, or narrow `path`/`glob`) ...]")  # fmt: skip
                    return "\n".join(hits)
                if found:
                    hit = f"{rel}:{number}: {line[:500]}"
                    hits.append(hit)
                    size += len(hit) + 1
                    if size > OUTPUT_LIMIT or len(hits) >= 500:
                        hits.append("[... more matches not shown ...]")
                        return "\n".join(hits)
    return "\n".join(hits) if hits else "(no matches)"


def _lines(dirfd: int, name: str) -> list[tuple[int, str]]:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dirfd)
    except OSError:
        return []
    with contextlib.closing(os.fdopen(fd, "rb")) as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1 or info.st_size > GREP_FILE_LIMIT:
            return []
        data = handle.read(GREP_FILE_LIMIT)
    if b"\x00" in data[:8192]:
        return []  # binary
    text = data.decode("utf-8", "replace")
    return [(i, line) for i, line in enumerate(text.splitlines(), 1) if len(line) <= 10_000]
