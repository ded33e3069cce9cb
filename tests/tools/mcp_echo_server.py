"""A tiny stdio MCP server used by the tests: two tools, `echo` and `add`."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server = MCPServer("echo-test")


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return f"echo: {text}"


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


if __name__ == "__main__":
    server.run()
