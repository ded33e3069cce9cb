"""The registry: built-ins match the spec's list, schemas come from type hints, plugins register."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest

from codexflow.errors import ToolError
from codexflow.spec.models import BUILTIN_TOOLS, Spec
from codexflow.tools import (
    Tool,
    ToolContext,
    Toolset,
    describe_protection,
    hookimpl,
    registered_tools,
    resolve_workspace,
    tool_from_function,
)
from codexflow.tools.hooks import plugin_manager, reset_registry


def test_builtins_are_exactly_the_spec_list() -> None:
    assert set(registered_tools()) == set(BUILTIN_TOOLS)


def test_schemas_are_openai_function_definitions(toolset: Callable[..., Toolset]) -> None:
    tools = toolset(list(BUILTIN_TOOLS))
    for schema in tools.schemas():
        assert schema["type"] == "function"
        function = schema["function"]
        assert function["description"]
        assert function["parameters"]["type"] == "object"
        assert "ctx" not in function["parameters"]["properties"]
    edit = next(s for s in tools.schemas() if s["function"]["name"] == "edit_file")
    assert edit["function"]["parameters"]["required"] == ["path", "search", "replace"]


def test_schema_from_type_hints() -> None:
    def resize(width: int, mode: Literal["fit", "fill"] = "fit", label: str | None = None) -> str:
        """Resize the thing."""
        return f"{width} {mode} {label}"

    tool = tool_from_function(resize)
    params = tool.schema()["function"]["parameters"]
    assert params["properties"]["width"] == {"type": "integer"}
    assert params["properties"]["mode"]["enum"] == ["fit", "fill"]
    assert params["required"] == ["width"]
    assert tool.description == "Resize the thing."
    assert tool.run(None, {"width": 3}) == "3 fit None"  # type: ignore[arg-type]
    with pytest.raises(ToolError, match="width"):
        tool.run(None, {"width": "wide"})  # type: ignore[arg-type]
    with pytest.raises(ToolError, match="colour: Extra inputs"):
        tool.run(None, {"width": 1, "colour": "red"})  # type: ignore[arg-type]


class _Plugin:
    @hookimpl
    def codexflow_register_tools(self, register: Callable[[Tool], None]) -> None:
        def shout(text: str) -> str:
            """Upper-case the text."""
            return text.upper()

        register(tool_from_function(shout))


def test_third_party_plugin_registers_through_the_same_hook() -> None:
    reset_registry()
    try:
        plugin_manager().register(_Plugin())
        assert registered_tools()["shout"].run(None, {"text": "hi"}) == "HI"  # type: ignore[arg-type]
    finally:
        reset_registry()
    assert "shout" not in registered_tools()


def test_model_mistakes_are_results_not_exceptions(
    toolset: Callable[..., Toolset], ctx: ToolContext
) -> None:
    tools = toolset(["read_file"])
    bad_json = tools.call("read_file", "{not json")
    assert not bad_json.ok and "JSON" in bad_json.content
    unknown = tools.call("launch_missiles", {})
    assert not unknown.ok and unknown.refused and "may not call" in unknown.content
    missing = tools.call("read_file", {})
    assert not missing.ok and "path" in missing.content
    not_object = tools.call("read_file", "[1, 2]")
    assert not not_object.ok
    ok = tools.call("read_file", '{"path": "hello.txt"}')
    assert ok.ok and ok.content == "hello world\n"
    outcomes = [r.outcome for r in ctx.audit.records()]
    assert outcomes == ["error", "refused", "error", "error", "ok"]


def test_python_tool_is_imported_when_the_toolset_is_built(
    toolset: Callable[..., Toolset], monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    module = tmp_path / "cfx_sample_tools.py"
    module.write_text(
        "from __future__ import annotations\n"
        "IMPORTED = []\n"
        "def word_count(ctx, text: str, minimum: int = 0) -> int:\n"
        "    '''Count the words of a text.'''\n"
        "    return sum(1 for w in text.split() if len(w) >= minimum)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    tools = toolset(["count"], {"count": {"kind": "python", "ref": "cfx_sample_tools:word_count"}})
    (schema,) = tools.schemas()
    assert schema["function"]["name"] == "count"
    assert schema["function"]["description"] == "Count the words of a text."
    assert schema["function"]["parameters"]["required"] == ["text"]
    assert tools.call("count", {"text": "a bb ccc", "minimum": 2}).content == "2"
    with pytest.raises(ToolError, match="cannot import"):
        toolset(["nope"], {"nope": {"kind": "python", "ref": "cfx_no_such_module:f"}})


def test_a_name_registered_twice_is_an_error() -> None:
    class Twice:
        @hookimpl
        def codexflow_register_tools(self, register: Callable[[Tool], None]) -> None:
            def read_file(path: str) -> str:
                """A second read_file."""
                return path

            register(tool_from_function(read_file))

    reset_registry()
    try:
        plugin_manager().register(Twice())
        with pytest.raises(ToolError, match="registered twice"):
            registered_tools()
    finally:
        reset_registry()


def test_plugins_load_once() -> None:
    assert plugin_manager() is plugin_manager()


def _bwrap_runs(*flags: str) -> bool:
    """Whether bubblewrap itself starts with these flags here (asked of bwrap directly)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False
    done = subprocess.run([bwrap, *flags, "--ro-bind", "/", "/", "true"], capture_output=True)
    return done.returncode == 0


def _memory_cgroup_writable() -> bool:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        roots = []
        if "memory" in controllers.split(","):
            roots.append(Path("/sys/fs/cgroup/memory") / path.lstrip("/"))
            roots.append(Path("/sys/fs/cgroup/memory"))
        if controllers == "":
            roots.append(Path("/sys/fs/cgroup"))
        for root in roots:
            probe = root / f"test-doctor-{os.getpid()}"
            try:
                probe.mkdir()
                (
                    probe
                    / ("memory.max" if root == Path("/sys/fs/cgroup") else "memory.limit_in_bytes")
                ).write_text(str(64 << 20))
            except OSError:
                continue
            finally:
                with contextlib.suppress(OSError):
                    probe.rmdir()
            return True
    return False


def test_describe_protection_reports_the_facts_of_this_machine() -> None:
    report = describe_protection()
    json.dumps(report)  # JSON-able for `codexflow doctor --json`
    assert report["bwrap"]["working"] == _bwrap_runs("--unshare-net", "--unshare-pid")
    if report["bwrap"]["working"]:
        assert report["user_namespace"]["present"] == _bwrap_runs("--unshare-user")
        known_arch = platform.machine() in ("x86_64", "aarch64")
        assert report["seccomp"]["present"] == known_arch
    else:
        assert not report["user_namespace"]["present"] and not report["seccomp"]["present"]
    assert report["memory_cgroup"]["present"] == _memory_cgroup_writable()
    assert report["running_as_root"] == (os.geteuid() == 0)


def test_python_tool_with_approval(
    toolset: Callable[..., Toolset], ctx: ToolContext, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    (tmp_path / "cfx_sample_danger.py").write_text(
        "def drop(table: str) -> str:\n    '''Drop a table.'''\n    return 'dropped ' + table\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    spec_tools = {"drop": {"kind": "python", "ref": "cfx_sample_danger:drop", "approval": True}}
    tools = toolset(["drop"], spec_tools)
    assert tools.call("drop", {"table": "users"}).refused
    ctx.approve = lambda name, args: args == {"table": "scratch"}
    assert tools.call("drop", {"table": "users"}).refused
    assert tools.call("drop", {"table": "scratch"}).content == "dropped scratch"


CTX_MODULE = '''
from __future__ import annotations
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from codexflow.tools import ToolContext
def whoami(context: ToolContext, shout: bool = False) -> str:
    """Name the agent."""
    return context.agent.upper() if shout else context.agent
'''


def test_context_annotation_under_type_checking(
    tmp_path, monkeypatch: pytest.MonkeyPatch, ctx: ToolContext
) -> None:
    (tmp_path / "cfx_sample_ctx.py").write_text(CTX_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import cfx_sample_ctx

    tool = tool_from_function(cfx_sample_ctx.whoami)
    assert list(tool.parameters["properties"]) == ["shout"]
    assert tool.run(ctx, {"shout": True}) == "CODER"


def test_resolve_workspace(tmp_path) -> None:
    spec = Spec.model_validate(
        {
            "apiVersion": "codexflow/v1",
            "name": "ws",
            "workspace": "project",
            "agents": {"a": {"role": "coder"}},
            "tasks": {"t": {"agent": "a", "prompt": "p"}},
        }
    )
    assert resolve_workspace(spec, tmp_path / "swarm.yaml") == (tmp_path / "project").resolve()
