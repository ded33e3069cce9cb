"""Git built-ins: they work, and planted hooks, fsmonitor and filters never run."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from codexflow.tools import ToolContext, Toolset
from codexflow.tools import sandbox as sandbox_module

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


def test_planted_hooks_never_run(
    toolset: Callable[..., Toolset], repo: Path, tmp_path: Path
) -> None:
    sentinels = repo / "sentinels"  # inside the workspace: a hook run in the sandbox could write it
    sentinels.mkdir()
    hooks = repo / ".git" / "hooks"
    names = ["pre-commit", "post-commit", "commit-msg", "prepare-commit-msg", "post-index-change"]
    for hook in names:
        script = hooks / hook
        script.write_text(f"#!/bin/sh\necho ran > {sentinels / hook}\n")
        script.chmod(0o755)
    # Control: plain git runs them (so the check below can fail).
    (repo / "hello.txt").write_text("changed\n")
    subprocess.run(["git", "commit", "-qam", "control"], cwd=repo, capture_output=True,
                   env=_plain_env(tmp_path))  # fmt: skip
    assert {"pre-commit", "post-commit"} <= {p.name for p in sentinels.iterdir()}
    for made in sentinels.iterdir():
        made.unlink()
    tools = toolset(GIT_TOOLS)
    (repo / "hello.txt").write_text("changed again\n")
    for name, args in [("git_status", {}), ("git_commit", {"message": "agent commit"}),
                       ("git_diff", {"staged": True})]:  # fmt: skip
        result = tools.call(name, args)
        assert result.ok, (name, result.content)
    assert "agent commit" in _git(repo, "log", "-1", "--format=%s")
    assert list(sentinels.iterdir()) == []


def _plain_env(home: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t", "GIT_EDITOR": "true"}  # fmt: skip


def _program(directory: Path, sentinel: Path) -> Path:
    """A script that leaves `sentinel` and passes its input through (a working filter)."""
    script = directory / f"prog-{sentinel.name}.sh"
    script.write_text(f"#!/bin/sh\necho ran >> {sentinel}\ncat\n")
    script.chmod(0o755)
    return script


# Every kind of config entry that makes git run a program, or read config we did not check.
PROGRAM_CONFIG = {
    "filter-clean": '[filter "evil"]\n\tclean = {prog}\n',
    "filter-smudge": '[filter "evil"]\n\tsmudge = {prog}\n',
    "filter-process": '[filter "evil"]\n\tprocess = {prog}\n\trequired = true\n',
    "filter-uppercase": '[FILTER "evil"]\n\tCLEAN = {prog}\n',
    "filter-dotted-name": '[filter "a.b.c"]\n\tclean = {prog}\n',
    "diff-textconv": '[diff "evil"]\n\ttextconv = {prog}\n',
    "diff-command": '[diff "evil"]\n\tcommand = {prog}\n',
    "diff-external": "[diff]\n\texternal = {prog}\n",
    "merge-driver": '[merge "evil"]\n\tdriver = {prog}\n',
    "core-pager": "[core]\n\tpager = {prog}\n",
    "pager-status": "[pager]\n\tstatus = {prog}\n",
    "core-editor": "[core]\n\teditor = {prog}\n",
    "sequence-editor": "[sequence]\n\teditor = {prog}\n",
    "core-sshcommand": "[core]\n\tsshCommand = {prog}\n",
    "core-fsmonitor": "[core]\n\tfsmonitor = {prog}\n",
    "core-hookspath": "[core]\n\thooksPath = {dir}\n",
    "core-askpass": "[core]\n\taskPass = {prog}\n",
    "core-gitproxy": "[core]\n\tgitProxy = {prog}\n",
    "core-worktree": "[core]\n\tworktree = {dir}\n",
    "credential-helper": "[credential]\n\thelper = {prog}\n",
    "credential-url-helper": '[credential "https://example.invalid"]\n\thelper = {prog}\n',
    "gpg-program": "[gpg]\n\tprogram = {prog}\n[commit]\n\tgpgSign = true\n",
    "gpg-ssh-program": '[gpg "ssh"]\n\tprogram = {prog}\n',
    "alias-shell": "[alias]\n\tst = !{prog}\n",
    "submodule-update": '[submodule "x"]\n\tupdate = !{prog}\n',
    "hook-command": '[hook "evil"]\n\tcommand = {prog}\n\tevent = pre-commit\n',
    "uploadpack-hook": "[uploadpack]\n\tpackObjectsHook = {prog}\n",
    "include-path": "[include]\n\tpath = {include}\n",
    "includeif-gitdir": '[includeIf "gitdir:/"]\n\tpath = {include}\n',
    "includeif-onbranch": '[includeIf "onbranch:main"]\n\tpath = {include}\n',
}


@pytest.mark.usefixtures("sandbox")
@pytest.mark.parametrize("kind", sorted(PROGRAM_CONFIG))
def test_config_that_runs_a_program_is_refused(
    toolset: Callable[..., Toolset], repo: Path, tmp_path: Path, kind: str
) -> None:
    host_sentinel = tmp_path / f"host-{kind}"  # outside the workspace: only the host could write it
    inner_sentinel = repo / f"inner-{kind}"
    prog = _program(repo, inner_sentinel)
    host_prog = _program(tmp_path, host_sentinel)
    include = repo / "included.cfg"
    include.write_text(f'[filter "evil"]\n\tclean = {prog}\n[core]\n\tfsmonitor = {host_prog}\n')
    (repo / ".gitattributes").write_text("* filter=evil diff=evil merge=evil\n")
    (repo / "a.b.c.txt").write_text("x\n")
    (repo / ".gitattributes").write_text(
        "* filter=evil diff=evil merge=evil\n*.c.txt filter=a.b.c\n"
    )
    snippet = PROGRAM_CONFIG[kind].format(prog=prog, dir=repo, include=include)
    config = repo / ".git" / "config"
    config.write_text(config.read_text() + snippet)
    (repo / "hello.txt").write_text("changed\n")
    tools = toolset(GIT_TOOLS)
    for name, args in [("git_status", {}), ("git_diff", {}), ("git_commit", {"message": "m"}),
                       ("git_diff", {"staged": True})]:  # fmt: skip
        result = tools.call(name, args)
        assert result.refused, (name, result.content)
        assert "run programs" in result.content
    assert not inner_sentinel.exists() and not host_sentinel.exists()
    assert _git(repo, "log", "-1", "--format=%s").strip() == "initial"  # nothing committed


@pytest.mark.usefixtures("sandbox")
def test_filter_control_runs_with_plain_git(repo: Path, tmp_path: Path) -> None:
    """The configs above are real attacks: plain git runs the filter (so the test can fail)."""
    sentinel = repo / "ran"
    prog = _program(repo, sentinel)
    config = repo / ".git" / "config"
    config.write_text(config.read_text() + f'[filter "evil"]\n\tclean = {prog}\n')
    (repo / ".gitattributes").write_text("* filter=evil\n")
    (repo / "hello.txt").write_text("changed\n")
    subprocess.run(["git", "add", "hello.txt"], cwd=repo, env=_plain_env(tmp_path), check=True)
    assert sentinel.exists()


@pytest.mark.usefixtures("sandbox")
def test_long_config_is_read_whole_or_refused(
    toolset: Callable[..., Toolset], repo: Path, tmp_path: Path
) -> None:
    sentinel = tmp_path / "ran"
    prog = _program(tmp_path, sentinel)
    (repo / ".gitattributes").write_text("* filter=evil\n")
    (repo / "hello.txt").write_text("changed\n")
    config = repo / ".git" / "config"
    base = config.read_text()
    # Past the 64 KiB output cap of a tool, then past the cap of the config check itself.
    for entries in (20_000, 300_000):
        padding = "".join(f"\tk{i} = {'v' * 8}\n" for i in range(entries))
        config.write_text(f'{base}[pad]\n{padding}[filter "evil"]\n\tclean = {prog}\n')
        result = toolset(GIT_TOOLS).call("git_commit", {"message": "m"})
        assert result.refused, result.content[:300]
        assert ("filter.evil.clean" in result.content) == (entries == 20_000)
    assert not sentinel.exists()


@pytest.mark.usefixtures("sandbox")
def test_nested_repository_config_is_never_read(
    toolset: Callable[..., Toolset], repo: Path, tmp_path: Path
) -> None:
    sub = repo / "sub"
    sub.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=sub, env=_plain_env(tmp_path), check=True)
    (sub / "s.txt").write_text("s\n")
    subprocess.run(["git", "add", "-A"], cwd=sub, env=_plain_env(tmp_path), check=True)
    subprocess.run(["git", "commit", "-qm", "s"], cwd=sub, env=_plain_env(tmp_path), check=True)
    sentinels = {name: repo / f"sub-{name}" for name in ("clean", "fsmonitor", "textconv")}
    progs = {name: _program(tmp_path, path) for name, path in sentinels.items()}
    with (sub / ".git" / "config").open("a") as out:
        out.write(f'[filter "evil"]\n\tclean = {progs["clean"]}\n[diff "evil"]\n\t'
                  f'textconv = {progs["textconv"]}\n[core]\n\tfsmonitor = {progs["fsmonitor"]}\n')  # fmt: skip
    (sub / ".gitattributes").write_text("* filter=evil diff=evil\n")
    subprocess.run(["git", "add", "sub"], cwd=repo, env=_plain_env(tmp_path), capture_output=True)
    subprocess.run(
        ["git", "commit", "-qm", "gitlink"], cwd=repo, env=_plain_env(tmp_path), check=True
    )
    (sub / "s.txt").write_text("changed\n")
    # Control: plain git status in the outer repository runs the nested one's fsmonitor.
    subprocess.run(["git", "status"], cwd=repo, env=_plain_env(tmp_path), capture_output=True)
    assert sentinels["fsmonitor"].exists()
    sentinels["fsmonitor"].unlink()
    (repo / "hello.txt").write_text("changed\n")
    tools = toolset(GIT_TOOLS)
    for name, args in [("git_status", {}), ("git_diff", {}), ("git_commit", {"message": "outer"}),
                       ("git_status", {})]:  # fmt: skip
        result = tools.call(name, args)
        assert result.ok, (name, result.content)
    assert not any(path.exists() for path in sentinels.values())


@pytest.mark.usefixtures("sandbox")
def test_workspace_made_into_a_repository_by_file_writes(
    toolset: Callable[..., Toolset], workspace: Path, tmp_path: Path
) -> None:
    """A workspace without .git whose files look like a bare repository, or a gitfile."""
    sentinel = tmp_path / "ran"
    prog = _program(tmp_path, sentinel)
    tools = toolset([*GIT_TOOLS, "edit_file"])
    files = {
        "HEAD": "ref: refs/heads/main\n",
        "config": f'[core]\n\tbare = true\n\tfsmonitor = {prog}\n[filter "evil"]\n\tclean = {prog}\n',
        "objects/info/keep": "",
        "refs/heads/keep": "",
        ".gitattributes": "* filter=evil\n",
    }
    for path, content in files.items():
        assert tools.call("write_file", {"path": path, "content": content}).ok
    for name, args in [("git_status", {}), ("git_commit", {"message": "m"})]:
        result = tools.call(name, args)
        assert not result.ok and "not a git repository" in result.content, result.content
    # .git as a file pointing at a repository elsewhere, or as a symlink: refused.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run(["git", "init", "-q", "--bare", str(elsewhere / "r.git")], check=True,
                   env=_plain_env(tmp_path))  # fmt: skip
    (workspace / ".git").write_text(f"gitdir: {elsewhere / 'r.git'}\n")
    assert tools.call("git_status", {}).refused
    (workspace / ".git").unlink()
    (workspace / ".git").symlink_to(elsewhere / "r.git")
    assert tools.call("git_status", {}).refused
    assert not sentinel.exists()


def test_git_never_runs_without_the_sandbox(
    toolset: Callable[..., Toolset], repo: Path, ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox_module, "bwrap_works", lambda: False)
    ctx.allow_unsafe = True  # even when shell tools may run unsandboxed
    result = toolset(GIT_TOOLS).call("git_status", {})
    assert result.refused and "bubblewrap" in result.content


@pytest.mark.usefixtures("sandbox")
def test_the_state_dir_is_out_of_the_git_tools_reach(
    toolset: Callable[..., Toolset], repo: Path, ctx: ToolContext
) -> None:
    """In the init layout the state dir is in the repository (its schema file often tracked):
    masked in the sandbox, it must neither look deleted nor be committed as deleted."""
    state = repo / ".codexflow"
    state.mkdir()
    (state / "swarm.schema.json").write_text("{}")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "track the schema")
    (state / "runs").mkdir()
    (state / "runs" / "new.json").write_text("{}")
    ctx.protected = [state]
    tools = toolset(GIT_TOOLS)
    (repo / "hello.txt").write_text("changed\n")
    status = tools.call("git_status", {})
    assert status.ok and ".codexflow" not in status.content and "hello.txt" in status.content
    assert ".codexflow" not in tools.call("git_diff", {}).content
    assert tools.call("git_diff", {"paths": [".codexflow/swarm.schema.json"]}).refused
    assert tools.call("git_commit", {"message": "m", "paths": [".codexflow"]}).refused
    assert tools.call("git_commit", {"message": "agent"}).ok
    assert _git(repo, "show", "--name-status", "--format=", "HEAD").split() == ["M", "hello.txt"]
    assert ".codexflow/swarm.schema.json" in _git(repo, "ls-files")
