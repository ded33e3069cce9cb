"""An MCP server's tools are listed and called through a Toolset."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from codexflow.errors import ToolError
from codexflow.tools import Toolset

SERVER = str(Path(__file__).with_name("mcp_echo_server.py"))


def _spec(**extra: object) -> dict:
    return {"echo": {"kind": "mcp", "command": [sys.executable, SERVER], **extra}}


def test_mcp_tools_are_listed_and_called(toolset: Callable[..., Toolset]) -> None:
    tools = toolset(["echo", "read_file"], _spec())
    names = [s["function"]["name"] for s in tools.schemas()]
    assert names == ["echo__echo", "echo__add", "read_file"]
    add = next(s for s in tools.schemas() if s["function"]["name"] == "echo__add")
    assert add["function"]["description"] == "Add two integers."
    assert add["function"]["parameters"]["required"] == ["a", "b"]
    assert tools.call("echo__add", {"a": 2, "b": 3}).content == "5"
    assert tools.call("echo.echo", '{"text": "hi"}').content == "echo: hi"
    wrong = tools.call("echo__add", {"a": "two", "b": 3})
    assert not wrong.ok
    tools.close()
    after = tools.call("echo__add", {"a": 1, "b": 1})
    assert not after.ok


def test_single_mcp_tool_and_include(toolset: Callable[..., Toolset]) -> None:
    only = toolset(["echo.add"], _spec())
    assert [s["function"]["name"] for s in only.schemas()] == ["echo__add"]
    included = toolset(["echo"], _spec(include=["echo"]))
    assert [s["function"]["name"] for s in included.schemas()] == ["echo__echo"]
    assert included.call("echo__add", {"a": 1, "b": 2}).refused
    with pytest.raises(ToolError, match="no tool 'missing'"):
        toolset(["echo.missing"], _spec())


def test_a_server_that_does_not_start_is_a_setup_error(toolset: Callable[..., Toolset]) -> None:
    with pytest.raises(ToolError, match="did not start"):
        toolset(
            ["broken"],
            {
                "broken": {
                    "kind": "mcp",
                    "command": [sys.executable, "-c", "import sys; sys.exit(3)"],
                }
            },
        )
