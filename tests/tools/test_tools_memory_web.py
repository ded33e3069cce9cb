"""Memory tools over the in-run store, the audit log, and web fetches limited to allowed hosts."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator

import pytest

from codexflow.errors import ToolError
from codexflow.tools import AuditLog, InMemoryStore, MemoryStore, ToolContext, Toolset
from codexflow.tools.audit import hash_arguments


def test_memory_tools(toolset: Callable[..., Toolset], ctx: ToolContext) -> None:
    tools = toolset(["memory_store", "memory_get", "memory_search"])
    assert tools.call("memory_store", {"key": "plan", "value": "refactor the parser module"}).ok
    assert tools.call("memory_store", {"key": "owner", "value": "alice owns the lexer"}).ok
    assert tools.call("memory_get", {"key": "plan"}).content == "refactor the parser module"
    assert not tools.call("memory_get", {"key": "nothing"}).ok
    hits = json.loads(tools.call("memory_search", {"query": "parser refactor"}).content)
    assert hits[0]["key"] == "plan" and hits[0]["score"] == 1.0
    ctx.memory = None
    assert "not available" in tools.call("memory_get", {"key": "plan"}).content


def test_memory_store_is_thread_safe() -> None:
    store = InMemoryStore()
    assert isinstance(store, MemoryStore)

    def writer(n: int) -> None:
        for i in range(500):
            store.put(f"k{n}-{i}", f"value {i}", namespace="ns")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.search("value", namespace="ns", limit=10_000)) == 4000
    assert store.get("k3-7", namespace="ns") == "value 7" and store.get("k3-7") is None


def test_argument_hash_is_canonical() -> None:
    assert hash_arguments({"b": 1, "a": [1, 2]}) == hash_arguments('{"a": [1, 2], "b": 1}')
    assert hash_arguments("{broken") != hash_arguments("{broken!")
    log = AuditLog()
    assert log.records() == []


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/away":
            self.send_response(302)
            self.send_header("Location", "http://localhost:1/elsewhere")
            self.end_headers()
            return
        body = b"hello from the allowed host"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_web_fetch_only_allowed_hosts(toolset: Callable[..., Toolset], web_server: int) -> None:
    tools = toolset(["docs"], {"docs": {"kind": "web", "allow_hosts": ["127.0.0.1"]}})
    ok = tools.call("docs", {"url": f"http://127.0.0.1:{web_server}/page"})
    assert ok.ok and "hello from the allowed host" in ok.content
    for url in [f"http://localhost:{web_server}/page", "file:///etc/passwd", f"http://x@127.0.0.1:{web_server}/",
                "ftp://127.0.0.1/"]:  # fmt: skip
        result = tools.call("docs", {"url": url})
        assert result.refused, url
    redirected = tools.call("docs", {"url": f"http://127.0.0.1:{web_server}/away"})
    assert redirected.refused and "redirect" in redirected.content


def test_web_is_off_without_a_web_tool(toolset: Callable[..., Toolset], web_server: int) -> None:
    tools = toolset(["read_file"])
    assert tools.call("web_fetch", {"url": f"http://127.0.0.1:{web_server}/"}).refused
    with pytest.raises(ToolError, match="kind: web"):
        toolset(["web_fetch"])
    spec_tools = {"docs": {"kind": "web", "allow_hosts": ["127.0.0.1"]}}
    fetch = toolset(["web_fetch"], spec_tools)
    assert (
        "allowed host"
        in fetch.call("web_fetch", {"url": f"http://127.0.0.1:{web_server}/"}).content
    )
    assert fetch.call("web_fetch", {"url": "http://example.com/"}).refused
