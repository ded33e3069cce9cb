"""File built-ins: what they do inside the workspace, and the `writable` globs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from codexflow.tools import ToolContext, Toolset
from codexflow.tools.files import glob_match

FILE_TOOLS = ["read_file", "write_file", "edit_file", "list_files", "grep"]


def test_write_read_edit(toolset: Callable[..., Toolset], workspace: Path) -> None:
    tools = toolset(FILE_TOOLS)
    assert tools.call("write_file", {"path": "new/deep/file.txt", "content": "a\nb\n"}).ok
    assert (workspace / "new/deep/file.txt").read_text() == "a\nb\n"
    assert tools.call("read_file", {"path": "new/deep/file.txt"}).content == "a\nb\n"
    assert tools.call("read_file", {"path": str(workspace / "hello.txt")}).ok  # absolute, inside
    assert tools.call(
        "edit_file", {"path": "src/app.py", "search": "return 1", "replace": "return 2"}
    ).ok
    assert "return 2" in (workspace / "src/app.py").read_text()


def test_edit_file_needs_exactly_one_occurrence(
    toolset: Callable[..., Toolset], workspace: Path
) -> None:
    tools = toolset(FILE_TOOLS)
    (workspace / "twice.txt").write_text("x = 1\nx = 1\n")
    absent = tools.call("edit_file", {"path": "twice.txt", "search": "y = 2", "replace": "z"})
    assert not absent.ok and "not found" in absent.content
    twice = tools.call("edit_file", {"path": "twice.txt", "search": "x = 1", "replace": "z"})
    assert not twice.ok and "2 times" in twice.content
    assert (workspace / "twice.txt").read_text() == "x = 1\nx = 1\n"


def test_write_keeps_the_file_mode(toolset: Callable[..., Toolset], workspace: Path) -> None:
    script = workspace / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    assert (
        toolset(FILE_TOOLS)
        .call("write_file", {"path": "run.sh", "content": "#!/bin/sh\necho\n"})
        .ok
    )
    assert script.stat().st_mode & 0o777 == 0o755


def test_list_and_grep(toolset: Callable[..., Toolset], workspace: Path) -> None:
    tools = toolset(FILE_TOOLS)
    (workspace / ".hidden").mkdir()
    (workspace / ".hidden" / "h.py").write_text("def main(): pass\n")
    listing = tools.call("list_files", {}).content.splitlines()
    assert listing == [".hidden/h.py", "hello.txt", "src/app.py"]
    assert tools.call("list_files", {"path": "src", "pattern": "*.py"}).content == "src/app.py"
    hits = tools.call("grep", {"pattern": r"def \w+", "glob": "*.py"}).content.splitlines()
    assert sorted(hits) == [".hidden/h.py:1: def main(): pass", "src/app.py:1: def main():"]
    assert (
        tools.call("grep", {"pattern": "HELLO", "ignore_case": True}).content
        == "hello.txt:1: hello world"
    )
    bad = tools.call("grep", {"pattern": "("})
    assert not bad.ok and "regular expression" in bad.content


def test_output_to_the_model_is_capped(toolset: Callable[..., Toolset], workspace: Path) -> None:
    (workspace / "big.txt").write_text("x" * 300_000)
    content = toolset(FILE_TOOLS).call("read_file", {"path": "big.txt"}).content
    assert len(content) < 70_000 and "[... truncated" in content


def test_writable_globs(toolset: Callable[..., Toolset], workspace: Path, ctx: ToolContext) -> None:
    tools = toolset(FILE_TOOLS, writable=["docs/**", "*.md"])
    assert ctx.writable == ["docs/**", "*.md"]
    assert tools.call("write_file", {"path": "docs/a/b.txt", "content": "ok"}).ok
    assert tools.call("write_file", {"path": "README.md", "content": "ok"}).ok
    refused = tools.call("write_file", {"path": "src/app.py", "content": "pwned"})
    assert refused.refused and "not writable" in refused.content
    assert tools.call("edit_file", {"path": "src/app.py", "search": "1", "replace": "2"}).refused
    sneaky = tools.call("write_file", {"path": "docs/../src/app.py", "content": "pwned"})
    assert sneaky.refused
    assert (workspace / "src/app.py").read_text() == "def main():\n    return 1\n"


def test_writes_into_git_dir_are_refused(toolset: Callable[..., Toolset], workspace: Path) -> None:
    (workspace / ".git").mkdir()
    result = toolset(FILE_TOOLS).call(
        "write_file", {"path": ".git/hooks/pre-commit", "content": "x"}
    )
    assert result.refused
    assert not (workspace / ".git/hooks").exists()


def test_glob_match() -> None:
    assert glob_match("a/b/c.py", "**/*.py") and glob_match("c.py", "**/*.py")
    assert glob_match("docs/x/y", "docs/") and not glob_match("docsx/y", "docs/")
    assert not glob_match("a/b.py", "*.py")
