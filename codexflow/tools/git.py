"""Git built-ins (git_status, git_diff, git_commit): sandboxed, and with no way to run a program.

Git runs programs named by configuration: hooks, filters, diff and merge drivers, pagers,
editors, ssh, credential helpers, fsmonitor. Those names can come from many files (system and
global config, the repository's config and what it includes, a worktree config, a submodule's
config) and .gitattributes picks the drivers. Instead of enumerating drivers, git here:

- runs only in the sandbox (never on the host) with system and global config off, no HOME
  config, GIT_DIR and GIT_WORK_TREE fixed to the workspace (no discovery of a bare-looking
  workspace, a parent repository or a gitfile pointing elsewhere);
- gets `-c` overrides (command-line config wins over every file, and reaches every git process
  it starts) for every key with a fixed name that runs a program;
- refuses a repository whose own config (read by git itself, whole, or refused when too long
  to read whole) sets any key that can run a program, includes other files, or moves the work
  tree: a filter or driver named by .gitattributes then has no command to run;
- ignores submodules in status and diff, so a nested repository's own config is never read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from codexflow.errors import ToolError
from codexflow.tools.confine import Workspace
from codexflow.tools.context import ToolContext
from codexflow.tools.refusal import ToolRefused
from codexflow.tools.sandbox import Limits, ProcessResult, run_sandboxed

# Keys with a fixed name that make git run a program (or reach the network), all neutralised.
HARDENING = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.pager=cat",
    "core.editor=false",
    "sequence.editor=false",
    "core.sshCommand=false",
    "core.askPass=",
    "core.gitProxy=",
    "core.attributesFile=/dev/null",
    "core.untrackedCache=false",
    "credential.helper=",
    "diff.external=",
    "diff.ignoreSubmodules=all",
    "status.submoduleSummary=false",
    "submodule.recurse=false",
    "gpg.program=false",
    "gpg.ssh.program=false",
    "gpg.x509.program=false",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "protocol.allow=never",
    "protocol.file.allow=never",
    "protocol.ext.allow=never",
    "uploadpack.packObjectsHook=",
    "gc.auto=0",
    "maintenance.auto=false",
    "safe.bareRepository=explicit",
)

# The last part of a config key (lowercase) that names a program, in any section:
# filter.<x>.clean, diff.<x>.textconv, merge.<x>.driver, core.pager, credential.<url>.helper...
PROGRAM_VARIABLES = frozenset({
    "clean", "smudge", "process", "textconv", "command", "cmd", "driver", "pager", "editor",
    "sshcommand", "fsmonitor", "hookspath", "askpass", "gitproxy", "program", "helper",
    "uploadpack", "receivepack", "packobjectshook", "difffilter", "external", "browser",
    "worktree", "alternaterefscommand", "defaultkeycommand", "tunnel", "sendmailcmd",
    "tocmd", "cccmd", "smtpserver", "proxycommand",
})  # fmt: skip
# Sections whose every key is a program, a path to one, or another file of config.
PROGRAM_SECTIONS = frozenset({"include", "includeif", "pager", "sendemail", "browser", "man",
                              "instaweb", "difftool", "mergetool", "guitool", "hook"})  # fmt: skip
CONFIG_LISTING_CAP = 4 << 20


def _env(ctx: ToolContext, workspace: Path) -> dict[str, str]:
    return {
        "HOME": "/tmp",
        "XDG_CONFIG_HOME": "/tmp/.no-config",
        "GIT_DIR": str(workspace / ".git"),
        "GIT_WORK_TREE": str(workspace),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_PAGER": "cat",
        "GIT_EDITOR": "false",
        "GIT_SEQUENCE_EDITOR": "false",
        "GIT_SSH_COMMAND": "false",
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        "GIT_ALLOW_PROTOCOL": "",
        "GIT_PROTOCOL_FROM_USER": "0",
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_OPTIONAL_LOCKS": "0",
        "GIT_CEILING_DIRECTORIES": str(workspace.parent),
        "GIT_AUTHOR_NAME": f"codexflow {ctx.agent}",
        "GIT_AUTHOR_EMAIL": "agent@codexflow.invalid",
        "GIT_COMMITTER_NAME": f"codexflow {ctx.agent}",
        "GIT_COMMITTER_EMAIL": "agent@codexflow.invalid",
    }


def _run(ctx: ToolContext, argv: list[str], *, cap: int | None = None) -> ProcessResult:
    workspace = Path(ctx.workspace).resolve()
    limits = Limits(timeout=60, output_cap=cap) if cap else Limits(timeout=60)
    # Never unsandboxed: without bubblewrap the git tools refuse, whatever allow_unsafe says.
    return run_sandboxed(
        argv,
        workspace,
        limits=limits,
        allow_unsafe=False,
        env=_env(ctx, workspace),
        protected=ctx.protected,
    )


def _check_git_dir(workspace: Path) -> None:
    """The repository must be `.git`, a plain directory of the workspace (no gitfile, link,
    or linked worktree whose common dir is elsewhere)."""
    try:
        info = os.lstat(workspace / ".git")
    except FileNotFoundError:
        raise ToolError("the workspace is not a git repository (no .git directory)") from None
    if not stat.S_ISDIR(info.st_mode):
        raise ToolRefused("refused: .git is not a plain directory (a link or a gitfile)")
    for name in ("commondir", "gitdir"):
        if os.path.lexists(workspace / ".git" / name):
            raise ToolRefused(f"refused: .git/{name} points at another repository")


def config_problems(listing: str) -> list[str]:
    """Keys of a `git config --list -z --show-scope --no-includes` listing that run a program."""
    problems = []
    fields = listing.split("\0")
    # Entries are `scope NUL key LF value NUL`; a value may be absent (`key NUL`).
    for scope, entry in zip(fields[0::2], fields[1::2], strict=False):
        if scope == "command":
            continue  # our own overrides
        key, _, value = entry.partition("\n")
        section = key.split(".", 1)[0].lower()
        variable = key.rsplit(".", 1)[-1].lower()
        if (
            section in PROGRAM_SECTIONS
            or variable in PROGRAM_VARIABLES
            or value.lstrip().startswith("!")
        ):
            problems.append(key)
    return problems


def _check_config(ctx: ToolContext) -> None:
    listing = _run(
        ctx,
        ["git", "config", "--list", "-z", "--show-scope", "--no-includes"],
        cap=CONFIG_LISTING_CAP,
    )
    if listing.total_bytes > CONFIG_LISTING_CAP:
        raise ToolRefused("refused: the repository's git config is too long to check")
    if listing.exit_code != 0:
        raise ToolError(f"git cannot read the repository's config:\n{listing.render()}")
    problems = config_problems(listing.output)
    if problems:
        shown = ", ".join(sorted(set(problems))[:10])
        raise ToolRefused(
            f"refused: the repository's git config sets keys that run programs or include "
            f"other files ({shown}); remove them to use the git tools"
        )


def _git(ctx: ToolContext, args: list[str]) -> str:
    workspace = Path(ctx.workspace).resolve()
    _check_git_dir(workspace)
    _check_config(ctx)
    argv = ["git", "--no-pager", "-c", f"safe.directory={workspace}"]
    for setting in HARDENING:
        argv += ["-c", setting]
    result = _run(ctx, [*argv, *args])
    if result.timed_out or result.exit_code != 0:
        raise ToolError(f"git {args[0]} failed:\n{result.render()}")
    return result.output


def _pathspecs(ctx: ToolContext, paths: list[str] | None) -> list[str]:
    """The paths as literal pathspecs (no glob or magic of the model's), the whole tree when
    none, always excluding the state dir (masked in the sandbox: its tracked files would look
    deleted)."""
    workspace = Workspace(ctx.workspace, protected=ctx.protected)
    chosen = [workspace.relpath(p) for p in paths or []] or ["."]
    specs = [f":(literal){p}" for p in chosen]
    root = str(workspace.root)
    for protected in workspace.protected:
        if protected.startswith(root.rstrip("/") + "/"):
            specs.append(f":(exclude,literal){os.path.relpath(protected, root)}")
    return specs


def git_status(ctx: ToolContext) -> str:
    """Show the working tree status (short format, with the branch)."""
    args = ["status", "--short", "--branch", "--no-renames", "--ignore-submodules=all", "--"]
    return _git(ctx, [*args, *_pathspecs(ctx, None)]) or "(clean)"


def git_diff(ctx: ToolContext, staged: bool = False, paths: list[str] | None = None) -> str:
    """Show changes not yet committed (or staged ones), optionally for some paths only."""
    args = ["diff", "--no-ext-diff", "--no-textconv", "--no-color", "--ignore-submodules=all"]
    if staged:
        args.append("--cached")
    text = _git(ctx, [*args, "--", *_pathspecs(ctx, paths)])
    from codexflow.tools.files import cap_text

    return cap_text(text) or "(no changes)"


def git_commit(ctx: ToolContext, message: str, paths: list[str] | None = None) -> str:
    """Stage the given paths (all changes when omitted) and commit them with the message."""
    if not message.strip():
        raise ToolError("a commit message is required")
    _git(ctx, ["add", "-A", "--", *_pathspecs(ctx, paths)])
    out = _git(ctx, ["commit", "--no-verify", "--no-gpg-sign", "-m", message])
    return out.strip().splitlines()[0] if out.strip() else "committed"
