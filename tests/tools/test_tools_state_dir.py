"""Class 1: the state dir is out of every tool's reach, wherever it is; codexflow's own writes
there follow no symlink."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from codexflow.tools import AuditLog, ToolContext, Toolset
from codexflow.tools.audit import AuditRecord
from codexflow.tools.confine import (
    append_file_beneath,
    make_dirs_beneath,
    read_file_beneath,
    write_file_beneath,
)

CANARY = "CANARY-state-91d2-do-not-leak"
FILE_TOOLS = ["read_file", "write_file", "edit_file", "list_files", "grep"]


@pytest.fixture
def state(workspace: Path, ctx: ToolContext) -> Path:
    """The `codexflow init` layout: the state dir inside the workspace, holding a canary."""
    state = workspace / ".codexflow"
    for sub in ("prefect", "runs/r1", "cache/ab"):
        (state / sub).mkdir(parents=True)
    (state / "prefect" / "secret.txt").write_text(CANARY)
    (state / "runs" / "r1" / "summary.json").write_text(f'{{"x": "{CANARY}"}}')
    ctx.protected = [state]
    return state


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
        out[str(path.relative_to(root))] = kind + (":" + path.read_text() if kind == "file" else "")
    return out


def test_file_tools_never_touch_the_state_dir(
    toolset: Callable[..., Toolset], workspace: Path, state: Path
) -> None:
    tools = toolset(FILE_TOOLS)
    before = _snapshot(state)
    names = [".codexflow", ".codexflow/", "./.codexflow/prefect/secret.txt",
             ".codexflow/prefect/logging.yml", "src/../.codexflow/runs/r1/summary.json",
             str(state / "prefect" / "secret.txt"), str(state), ".codexflow/new/deep/file",
             ".//.codexflow//prefect//secret.txt"]  # fmt: skip
    outputs = []
    for name in names:
        for tool, args in [
            ("read_file", {"path": name}),
            ("write_file", {"path": name, "content": "planted"}),
            ("edit_file", {"path": name, "search": CANARY, "replace": "x"}),
            ("list_files", {"path": name}),
            ("grep", {"pattern": ".", "path": name}),
        ]:
            result = tools.call(tool, args)
            outputs.append(result.content)
            assert result.refused, (tool, name, result.content)
            assert "state directory" in result.content
    # Walking the workspace skips it; nothing of it shows.
    listing = tools.call("list_files", {"path": "."})
    found = tools.call("grep", {"pattern": "CANARY"})
    assert ".codexflow" not in listing.content and "hello.txt" in listing.content
    assert found.content == "(no matches)"
    outputs += [listing.content, found.content]
    assert not any(CANARY in text for text in outputs)
    assert _snapshot(state) == before


def test_symlinks_into_the_state_dir_are_refused(
    toolset: Callable[..., Toolset], workspace: Path, state: Path, tmp_path: Path
) -> None:
    # A state dir outside the workspace, reached through links an agent (or a repo) put there.
    outside_state = tmp_path / "elsewhere-state"
    (outside_state / "prefect").mkdir(parents=True)
    (outside_state / "prefect" / "secret.txt").write_text(CANARY)
    tools = toolset(FILE_TOOLS)
    tools.ctx.protected.append(outside_state)
    (workspace / "to_state").symlink_to(state)
    (workspace / "to_outside_state").symlink_to(outside_state)
    (workspace / "to_secret").symlink_to(state / "prefect" / "secret.txt")
    (workspace / "src" / "deep").symlink_to("../.codexflow/prefect")
    before = (_snapshot(state), _snapshot(outside_state))
    names = ["to_state/prefect/secret.txt", "to_secret", "src/deep/secret.txt", "to_state",
             "to_outside_state/prefect/secret.txt", "src/deep"]  # fmt: skip
    links = {name: (workspace / name).is_symlink() for name in names}
    for name in ["to_state/prefect/secret.txt", "to_secret", "src/deep/secret.txt", "to_state",
                 "to_outside_state/prefect/secret.txt", "src/deep"]:  # fmt: skip
        for tool, args in [
            ("read_file", {"path": name}),
            ("write_file", {"path": name, "content": "planted"}),
            ("edit_file", {"path": name, "search": CANARY, "replace": "x"}),
            ("list_files", {"path": name}),
            ("grep", {"pattern": "CANARY", "path": name}),
        ]:
            result = tools.call(tool, args)
            # A write replaces a final link in the workspace itself (links are never followed
            # by writes); everything else is refused.
            final_link = tool == "write_file" and links[name]
            assert final_link or not result.ok, (tool, name, result.content)
            assert CANARY not in result.content
    assert (_snapshot(state), _snapshot(outside_state)) == before


@pytest.mark.usefixtures("sandbox")
def test_the_sandbox_masks_the_state_dir(
    toolset: Callable[..., Toolset], workspace: Path, state: Path, tmp_path: Path
) -> None:
    host = tmp_path / "host-target"
    host.mkdir()
    script = (
        "cat .codexflow/prefect/secret.txt; ls -la .codexflow; grep -r CANARY . ; "
        "echo planted > .codexflow/prefect/logging.yml; mkdir .codexflow/x; "
        f"ln -s {host} .codexflow/cache2; rm -rf .codexflow/runs; mv .codexflow gone; "
        "chmod 777 .codexflow; echo end"
    )
    spec = {"sh": {"kind": "shell", "command": ["sh", "-c", script]}}
    before = _snapshot(state)
    result = toolset(["sh"], spec).call("sh", {})
    assert "end" in result.content, result.content
    assert CANARY not in result.content
    assert _snapshot(state) == before
    assert not (workspace / "gone").exists() and list(host.iterdir()) == []


def test_unsandboxed_shell_refuses_when_the_state_dir_is_inside(
    toolset: Callable[..., Toolset], ctx: ToolContext, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codexflow.tools import sandbox as sandbox_module

    monkeypatch.setattr(sandbox_module, "bwrap_works", lambda: False)
    ctx.allow_unsafe = True
    result = toolset(["sh"], {"sh": {"kind": "shell", "command": ["cat", ".codexflow/prefect/secret.txt"]}}).call("sh", {})  # fmt: skip
    assert result.refused and CANARY not in result.content


def test_own_writes_follow_no_symlink(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    host = tmp_path / "host"
    host.mkdir()
    target = host / "bashrc"
    target.write_text(CANARY)
    (state / "runs").symlink_to(host)  # a directory replaced by a link
    (state / "cache").mkdir()
    (state / "cache" / "entry.json").symlink_to(target)  # a file replaced by a link
    os.link(target, state / "hard.json")  # a hard link to a host file
    for call in (
        lambda: write_file_beneath(state, "runs/r/summary.json", b"x"),
        lambda: make_dirs_beneath(state, "runs/r/steps"),
        lambda: append_file_beneath(state, "runs/audit.jsonl", b"x"),
        lambda: append_file_beneath(state, "cache/entry.json", b"x"),
        lambda: append_file_beneath(state, "hard.json", b"x"),
        lambda: read_file_beneath(state, "cache/entry.json"),
        lambda: read_file_beneath(state, "runs/bashrc"),
        lambda: write_file_beneath(state, "../host/bashrc", b"x"),
        lambda: write_file_beneath(state, str(target), b"x"),
    ):
        with pytest.raises(OSError):
            call()
    # A final symlink or hard link is replaced by the new file, never written through.
    write_file_beneath(state, "cache/entry.json", b"new")
    write_file_beneath(state, "hard.json", b"new")
    assert not (state / "cache" / "entry.json").is_symlink()
    assert (state / "cache" / "entry.json").read_bytes() == b"new"
    assert target.read_text() == CANARY and sorted(p.name for p in host.iterdir()) == ["bashrc"]


def test_the_audit_trail_is_appended_per_call_whatever_its_content(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    path = tmp_path / "runs" / "r1" / "audit.jsonl"
    contents = ["plain", "lone \udc80 surrogate", "\ud800", "nul \x00 byte", "é" * 10, "end"]
    for index, text in enumerate(contents):
        log.record(AuditRecord("r1", "s", "a", f"tool{index}", "0" * 64, "ok", 1.0, text, 0.0))
        # On disk at once: one more line per call.
        assert len(path.read_bytes().splitlines()) == index + 1
    import json

    lines = [json.loads(line) for line in path.read_bytes().decode("utf-8").splitlines()]
    assert [line["result"] for line in lines] == contents
    # A planted link for the trail of another run is refused, and the call is still kept.
    (tmp_path / "runs" / "r2").mkdir()
    (tmp_path / "runs" / "r2" / "audit.jsonl").symlink_to(tmp_path / "host.txt")
    log.record(AuditRecord("r2", "s", "a", "t", "0" * 64, "ok", 1.0, "x", 0.0))
    assert not (tmp_path / "host.txt").exists() and log.write_errors == 1
    assert len(log.records()) == len(contents) + 1
