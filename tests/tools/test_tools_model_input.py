"""Class 5: model input cannot hang a run, slip an option into argv, or break the audit trail;
class 3: python refs that reach the host are refused."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from codexflow.errors import SpecError, ToolError
from codexflow.spec import load_spec
from codexflow.tools import AuditLog, ToolContext, Toolset
from codexflow.tools import files as files_module

# Patterns that backtrack catastrophically in a backtracking engine, over short lines.
EVIL_PATTERNS = [r"^(a|aa)+$", r"^(a+)+$", r"(a*)*b", r"^(\w+\s?)*$", r"(x+x+)+y", r"^(a|a?)+$"]


def test_catastrophic_patterns_are_bounded(
    toolset: Callable[..., Toolset], workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files_module, "GREP_SECONDS", 0.5)
    (workspace / "evil.txt").write_text(
        ("a" * 40 + "!\n") * 3 + "x" * 40 + "\n" + "word " * 30 + "!\n"
    )
    tools = toolset(["grep"])
    for pattern in EVIL_PATTERNS:
        results: list = []
        worker = threading.Thread(
            target=lambda p=pattern, out=results: out.append(tools.call("grep", {"pattern": p})),
            daemon=True,
        )
        worker.start()
        # Bounded work, not a duration: the call comes back (the engine checks its timeout).
        worker.join(60)
        assert not worker.is_alive(), f"grep {pattern!r} did not return"
        (result,) = results
        assert result.ok, result.content
    # The classic one over the planted lines: stopped, and says so.
    stopped = tools.call("grep", {"pattern": r"^(a|aa)+$"})
    assert "stopped: the search took longer" in stopped.content


def test_a_stuck_grep_leaves_the_main_thread_free(
    toolset: Callable[..., Toolset], workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the engine works, other threads run (a SIGTERM handler in the main thread can)."""
    monkeypatch.setattr(files_module, "GREP_SECONDS", 3.0)
    (workspace / "evil.txt").write_text("a" * 60 + "!\n")
    tools = toolset(["grep"])
    worker = threading.Thread(target=tools.call, args=("grep", {"pattern": r"^(a|aa)+$"}))
    worker.start()
    ticks = 0
    while worker.is_alive() and ticks < 10_000:
        ticks += 1
        worker.join(0.001)
    assert ticks > 10  # the main thread kept running while the search was under way
    worker.join()


def test_globs_and_oversized_patterns(toolset: Callable[..., Toolset], workspace: Path) -> None:
    (workspace / ("a" * 200)).write_text("x\n")
    tools = toolset(["grep", "list_files"])
    assert not tools.call("grep", {"pattern": "x" * 5000}).ok
    assert not tools.call("grep", {"pattern": "(" * 100}).ok
    slow_glob = "*a" * 40 + "b"
    for name, args in [
        ("list_files", {"pattern": slow_glob}),
        ("grep", {"pattern": "x", "glob": slow_glob}),
    ]:
        result = tools.call(name, args)
        assert result.content in ("(no files)", "(no matches)") or not result.ok, result.content


NUMBER_TOOL = {
    "n": {"kind": "shell", "command": ["echo", "{{ n }}"], "args": {"n": {"type": "number"}}},
    "i": {"kind": "shell", "command": ["echo", "{{ i }}"], "args": {"i": {"type": "integer"}}},
    "s": {"kind": "shell", "command": ["echo", "{{ s }}"], "args": {"s": {"type": "string"}}},
}


@pytest.mark.usefixtures("sandbox")
def test_numbers_never_reach_argv_as_options(toolset: Callable[..., Toolset]) -> None:
    tools = toolset(["n", "i", "s"], NUMBER_TOOL)
    bad = [
        ("n", {"n": -math.inf}), ("n", {"n": math.inf}), ("n", {"n": math.nan}),
        ("n", '{"n": -Infinity}'), ("n", '{"n": Infinity}'), ("n", '{"n": NaN}'),
        ("n", {"n": -1.5}), ("i", {"i": -3}), ("n", '{"n": -1e400}'), ("n", '{"n": 1e400}'),
        ("n", {"n": [-1]}), ("s", {"s": "-inf"}), ("s", {"s": "--help"}), ("i", '{"i": ' + "9" * 5000 + "}"),
        ("n", {"n": {"x": -math.inf}}),
    ]  # fmt: skip
    for name, args in bad:
        result = tools.call(name, args)
        assert not result.ok, (name, args, result.content)
        assert "exit code" not in result.content  # refused before anything ran
    assert tools.call("n", {"n": 2.5}).content == "exit code: 0\n2.5"
    assert tools.call("i", {"i": 7}).content == "exit code: 0\n7"


def test_python_tool_arguments_are_finite(
    toolset: Callable[..., Toolset], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "cfx_scale_tool.py").write_text(
        "def scale(x: float) -> str:\n    '''Scale.'''\n    return repr(x * 2)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    tools = toolset(["scale"], {"scale": {"kind": "python", "ref": "cfx_scale_tool:scale"}})
    for value in (-math.inf, math.nan):
        assert not tools.call("scale", {"x": value}).ok
    assert not tools.call("scale", '{"x": -Infinity}').ok
    assert tools.call("scale", {"x": 1.5}).content == "3.0"


def test_every_call_is_audited_whatever_its_content(
    toolset: Callable[..., Toolset], ctx: ToolContext, tmp_path: Path
) -> None:
    ctx.audit = AuditLog(tmp_path / "state")
    ctx.run_id = "run-1"
    tools = toolset(["read_file", "write_file"])
    calls = [
        ("write_file", '{"path": "a.txt", "content": "lone \\udc80 surrogate"}'),
        ("write_file", {"path": "b\udcff.txt", "content": "x"}),
        ("read_file", {"path": "\ud800"}),
        ("read_file", '{"path": "\\ud83d"}'),
        ("nope\udc80", {}),
        ("read_file", "not json \udc80"),
        ("read_file", {"path": "hello.txt"}),
    ]
    for name, args in calls:
        tools.call(name, args)  # never raises
    lines = (tmp_path / "state" / "runs" / "run-1" / "audit.jsonl").read_bytes().decode("utf-8")
    entries = [json.loads(line) for line in lines.splitlines()]
    assert [e["tool"] for e in entries] == [name for name, _ in calls]
    assert entries[-1]["outcome"] == "ok" and "hello world" in entries[-1]["result"]


# -- class 3: python refs ------------------------------------------------------------------

DANGEROUS_REFS = ["os:system", "subprocess:run", "builtins:exec", "shutil:rmtree", "os.path:join",
                  "pathlib:Path", "importlib:import_module", "pickle:loads", "ctypes:CDLL",
                  "codexflow.tools.confine:write_file_beneath", "codexflow.runtime.store:write_json_atomic",
                  "pip._internal:main", "posix:system", "_thread:start_new_thread", "mypkg:_private"]  # fmt: skip


def _spec_with_ref(tmp_path: Path, ref: str, trusted: bool = False) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(
        "apiVersion: codexflow/v1\nname: refs\n"
        f'tools:\n  t: {{kind: python, ref: "{ref}"{", trusted: true" if trusted else ""}}}\n'
        "agents:\n  a: {role: coder, tools: [t]}\n"
        "tasks:\n  x: {agent: a, prompt: hi}\n"
    )
    return path


@pytest.mark.parametrize("ref", DANGEROUS_REFS)
def test_dangerous_refs_are_refused_at_validate_time(tmp_path: Path, ref: str) -> None:
    path = _spec_with_ref(tmp_path, ref)
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    (issue,) = [i for i in raised.value.issues if i.loc == "tools.t.ref"]
    assert issue.line == 4 and issue.col > 1 and "trusted: true" in issue.hint
    load_spec(_spec_with_ref(tmp_path, ref, trusted=True))  # a person vouched for it


@pytest.mark.parametrize("ref", ["os:system", "subprocess:run", "builtins:eval"])
def test_dangerous_refs_are_refused_when_the_toolset_is_built(
    toolset: Callable[..., Toolset], ref: str
) -> None:
    with pytest.raises(ToolError, match="refused ref"):
        toolset(["t"], {"t": {"kind": "python", "ref": ref}})
    trusted = toolset(["t"], {"t": {"kind": "python", "ref": "os.path:basename", "trusted": True}})
    assert trusted.call("t", {"p": "/a/b"}).ok or trusted.names == ["t"]


def test_a_module_in_the_workspace_is_never_imported(
    toolset: Callable[..., Toolset],
    workspace: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sentinel = tmp_path / "imported"
    (workspace / "cfx_planted_tool.py").write_text(
        f"open({str(sentinel)!r}, 'w').write('ran')\ndef f() -> str:\n    return 'x'\n"
    )
    monkeypatch.syspath_prepend(str(workspace))  # e.g. the workspace is the current directory
    with pytest.raises(ToolError, match="agents can write"):
        toolset(["t"], {"t": {"kind": "python", "ref": "cfx_planted_tool:f"}})
    assert not sentinel.exists()
    assert "cfx_planted_tool" not in sys.modules


def test_validate_reports_refs_as_file_line_col(tmp_path: Path) -> None:
    path = _spec_with_ref(tmp_path, "os:system")
    done = subprocess.run([sys.executable, "-m", "codexflow", "validate", str(path)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2
    assert f"{path}:4:" in done.stdout and "refused ref `os:system`" in done.stdout
