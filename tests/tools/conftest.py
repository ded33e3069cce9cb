"""Fixtures of the tool tests: a workspace, canaries outside it, a context and a spec builder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from codexflow.spec.models import Spec
from codexflow.tools import AuditLog, InMemoryStore, ToolContext, Toolset, build_toolset
from codexflow.tools.sandbox import bwrap_works

CANARY = "CANARY-7f3a9c-do-not-leak"

needs_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="bubblewrap is not installed (CI installs it)"
)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the workspace holding a canary file."""
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.txt").write_text(CANARY)
    return out


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "hello.txt").write_text("hello world\n")
    (ws / "src").mkdir()
    (ws / "src" / "app.py").write_text("def main():\n    return 1\n")
    return ws


@pytest.fixture
def ctx(workspace: Path) -> ToolContext:
    return ToolContext(
        workspace=workspace,
        run_id="run-1",
        step_id="step-1",
        agent="coder",
        audit=AuditLog(),
        memory=InMemoryStore(),
    )


def make_spec(tools: list[str], spec_tools: dict[str, Any] | None = None, **agent: Any) -> Spec:
    return Spec.model_validate(
        {
            "apiVersion": "codexflow/v1",
            "name": "tools-test",
            "agents": {"coder": {"role": "coder", "tools": tools, **agent}},
            "tools": spec_tools or {},
            "tasks": {"t": {"agent": "coder", "prompt": "do it"}},
        }
    )


@pytest.fixture
def toolset(ctx: ToolContext) -> Iterator[Callable[..., Toolset]]:
    """Build a toolset for the `coder` agent from a list of tool names (+ spec tools)."""
    made: list[Toolset] = []

    def build(tools: list[str], spec_tools: dict[str, Any] | None = None, **agent: Any) -> Toolset:
        result = build_toolset(make_spec(tools, spec_tools, **agent), "coder", ctx)
        made.append(result)
        return result

    yield build
    for item in made:
        item.close()


def require_sandbox() -> None:
    """Skip where bubblewrap cannot start a sandbox; but in CI (CI=true) fail: there a sandbox
    test that silently skips proves nothing (CI installs bubblewrap)."""
    if bwrap_works():
        return
    installed = shutil.which("bwrap") is not None
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(
            "bubblewrap is installed but cannot start a sandbox here"
            if installed
            else "CI=true but bubblewrap is not installed (the sandbox tests must run in CI)"
        )
    pytest.skip(
        "bubblewrap cannot start a sandbox here" if installed else "bubblewrap is not installed"
    )


@pytest.fixture
def sandbox() -> None:
    require_sandbox()
