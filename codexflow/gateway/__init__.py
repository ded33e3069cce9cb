"""codexflow for other programs: a run manager, an MCP server and an HTTP API over one set of verbs.

Importing this package imports neither the MCP SDK nor FastAPI; `mcp_server` and `http_api` do.
"""

from codexflow.gateway.runs import GatewayError, Run, RunManager
from codexflow.gateway.service import Gateway

__all__ = ["Gateway", "GatewayError", "Run", "RunManager"]
