"""Git built-ins (git_status, git_diff, git_commit) with hooks, fsmonitor, filters and pagers off."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from codexflow.errors import ToolError
from codexflow.tools.confine import Workspace
from codexflow.tools.context import ToolContext
from codexflow.tools.sandbox import Limits, bwrap_works, run_sandboxed

# Settings that would make git run a program chosen by whoever wrote the repository's files.
HARDENING = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.pager=cat",
    "core.sshCommand=false",
    "core.attributesFile=/dev/null",
    "credential.helper=",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "protocol.allow=never",
    "gc.auto=0",
    "maintenance.auto=false",
    "safe.directory=*",
)
_DRIVER = re.compile(r"^(filter|diff|merge)\.(.+)\.[A-Za-z]+$")


def _base_env(ctx: ToolContext, home: str) -> dict[str, str]:
    return {
        "HOME": home,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_PAGER": "cat",
        "GIT_CEILING_DIRECTORIES": str(Path(ctx.workspace).resolve().parent),
        "GIT_AUTHOR_NAME": f"codexflow {ctx.agent}",
        "GIT_AUTHOR_EMAIL": "agent@codexflow.invalid",
        "GIT_COMMITTER_NAME": f"codexflow {ctx.agent}",
        "GIT_COMMITTER_EMAIL": "agent@codexflow.invalid",
    }


def _git(ctx: ToolContext, args: list[str], *, timeout: float = 60) -> str:
    home = "/tmp"
    temp_home = None
    if not bwrap_works():
        # Unsandboxed (git is trusted; its configured programs are disabled): an empty HOME.
        temp_home = home = tempfile.mkdtemp(prefix="codexflow-git-home-")
    try:
        env = _base_env(ctx, home)
        overrides = [*HARDENING, *_neutralise_drivers(ctx, env)]
        argv = ["git", "--no-pager", "--literal-pathspecs"]
        for setting in overrides:
            argv += ["-c", setting]
        result = run_sandboxed(
            [*argv, *args],
            ctx.workspace,
            limits=Limits(timeout=timeout),
            allow_unsafe=True,
            env=env,
        )
    finally:
        if temp_home is not None:
            shutil.rmtree(temp_home, ignore_errors=True)
    if result.timed_out or result.exit_code != 0:
        raise ToolError(f"git {args[0]} failed:\n{result.render()}")
    return result.output


def _neutralise_drivers(ctx: ToolContext, env: dict[str, str]) -> list[str]:
    """Overrides for every filter/diff/merge driver the repository's config names.

    .gitattributes may point at them and `git add` would run a clean filter; reading the
    config runs nothing.
    """
    listing = run_sandboxed(
        ["git", "config", "--local", "--name-only", "--get-regexp", r"^(filter|diff|merge)\."],
        ctx.workspace,
        limits=Limits(timeout=30),
        allow_unsafe=True,
        env=env,
    )
    overrides: list[str] = []
    for line in listing.output.splitlines():
        match = _DRIVER.match(line.strip())
        if match is None:
            continue
        kind, name = match.groups()
        if kind == "filter":
            overrides += [f"filter.{name}.clean=cat", f"filter.{name}.smudge=cat",
                          f"filter.{name}.process=", f"filter.{name}.required=false"]  # fmt: skip
        elif kind == "diff":
            overrides += [f"diff.{name}.textconv=", f"diff.{name}.command="]
        else:
            overrides += [f"merge.{name}.driver=false"]
    return sorted(set(overrides))


def _paths(ctx: ToolContext, paths: list[str] | None) -> list[str]:
    workspace = Workspace(ctx.workspace, protected=ctx.protected)
    return [workspace.relpath(p) for p in paths or []]


def git_status(ctx: ToolContext) -> str:
    """Show the working tree status (short format, with the branch)."""
    return _git(ctx, ["status", "--short", "--branch", "--no-renames"]) or "(clean)"


def git_diff(ctx: ToolContext, staged: bool = False, paths: list[str] | None = None) -> str:
    """Show changes not yet committed (or staged ones), optionally for some paths only."""
    args = ["diff", "--no-ext-diff", "--no-textconv", "--no-color"]
    if staged:
        args.append("--cached")
    text = _git(ctx, [*args, "--", *_paths(ctx, paths)])
    from codexflow.tools.files import cap_text

    return cap_text(text) or "(no changes)"


def git_commit(ctx: ToolContext, message: str, paths: list[str] | None = None) -> str:
    """Stage the given paths (all changes when omitted) and commit them with the message."""
    if not message.strip():
        raise ToolError("a commit message is required")
    _git(ctx, ["add", "-A", "--", *(_paths(ctx, paths) or ["."])])
    out = _git(ctx, ["commit", "--no-verify", "--no-gpg-sign", "-m", message])
    return out.strip().splitlines()[0] if out.strip() else "committed"
