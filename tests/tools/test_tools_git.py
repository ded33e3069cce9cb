"""Git built-ins: they work, and planted hooks, fsmonitor and filters never run."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from codexflow.tools import Toolset
from codexflow.tools import git as git_module
from codexflow.tools import sandbox as sandbox_module
from codexflow.tools.sandbox import bwrap_works

GIT_TOOLS = ["git_status", "git_diff", "git_commit", "write_file"]


def _git(workspace: Path, *args: str) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(workspace.parent), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    done = subprocess.run(["git", "-c", "core.hooksPath=/dev/null", *args], cwd=workspace, env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    return done.stdout


@pytest.fixture
def repo(workspace: Path) -> Path:
    _git(workspace, "init", "-q", "-b", "main")
    _git(workspace, "add", "-A")
    _git(workspace, "commit", "-q", "-m", "initial")
    return workspace


def _plant(repo: Path, sentinels: Path) -> list[Path]:
    """Hooks, an fsmonitor, a clean filter and a textconv that each leave a sentinel file."""
    made = []
    hooks = repo / ".git" / "hooks"
    custom = repo / "myhooks"
    custom.mkdir()
    for directory in (hooks, custom):
        for hook in (
            "pre-commit",
            "post-commit",
            "commit-msg",
            "prepare-commit-msg",
            "post-index-change",
        ):
            target = sentinels / f"{directory.name}-{hook}"
            made.append(target)
            script = directory / hook
            script.write_text(f"#!/bin/sh\necho ran > {target}\n")
            script.chmod(0o755)
    scripts = {}
    for kind, tail in (("fsmonitor", ""), ("filter", "cat\n"), ("textconv", 'cat "$1"\n')):
        script = custom / f"{kind}.sh"
        script.write_text(f"#!/bin/sh\necho ran > {sentinels / kind}\n{tail}")
        script.chmod(0o755)
        scripts[kind] = script
        made.append(sentinels / kind)
    config = repo / ".git" / "config"
    config.write_text(
        config.read_text()
        + f"[core]\n\thooksPath = myhooks\n\tfsmonitor = {scripts['fsmonitor']}\n"
        + f'[filter "evil"]\n\tclean = {scripts["filter"]}\n'
        + f'[diff "evil"]\n\ttextconv = {scripts["textconv"]}\n'
    )
    (repo / ".gitattributes").write_text("* filter=evil diff=evil\n")
    return made


def test_git_tools(toolset: Callable[..., Toolset], repo: Path) -> None:
    tools = toolset(GIT_TOOLS)
    assert tools.call("git_status", {}).content.startswith("## main")
    assert tools.call("write_file", {"path": "hello.txt", "content": "hello git\n"}).ok
    assert " M hello.txt" in tools.call("git_status", {}).content
    diff = tools.call("git_diff", {"paths": ["hello.txt"]})
    assert "+hello git" in diff.content
    commit = tools.call("git_commit", {"message": "say hello to git"})
    assert commit.ok, commit.content
    assert _git(repo, "log", "-1", "--format=%an|%s").strip() == "codexflow coder|say hello to git"
    assert tools.call("git_diff", {}).content == "(no changes)"
    assert not tools.call("git_diff", {"paths": ["../x"]}).ok


@pytest.mark.parametrize("sandboxed", [True, False])
def test_planted_hooks_fsmonitor_and_filters_never_run(
    toolset: Callable[..., Toolset],
    repo: Path,
    tmp_path: Path,
    sandboxed: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if sandboxed and not bwrap_works():
        pytest.skip("bubblewrap cannot start a sandbox here")
    if not sandboxed:  # the git hardening alone must hold too
        monkeypatch.setattr(sandbox_module, "bwrap_works", lambda: False)
        monkeypatch.setattr(git_module, "bwrap_works", lambda: False)
    # Inside the workspace, so a hook run in the sandbox could still leave it.
    sentinels = repo / "sentinels"
    sentinels.mkdir()
    planted = _plant(repo, sentinels)
    # Control: plain git with this config does run them (so the check below can fail).
    (repo / "hello.txt").write_text("changed\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    for control in (["add", "hello.txt"], ["commit", "-qm", "control"]):
        subprocess.run(["git", *control], cwd=repo, capture_output=True, env=env)
    assert {"myhooks-pre-commit", "myhooks-post-commit", "filter"} <= {
        p.name for p in sentinels.iterdir()
    }
    for sentinel in planted:
        sentinel.unlink(missing_ok=True)

    tools = toolset(GIT_TOOLS)
    (repo / "hello.txt").write_text("changed again\n")
    (repo / "new.txt").write_text("new\n")
    for name, args in [("git_status", {}), ("git_diff", {}), ("git_commit", {"message": "agent commit"}),
                       ("git_diff", {"staged": True}), ("git_status", {})]:  # fmt: skip
        result = tools.call(name, args)
        assert result.ok, (name, result.content)
    assert "agent commit" in _git(repo, "log", "-1", "--format=%s")
    assert sorted(p.name for p in sentinels.iterdir()) == []
