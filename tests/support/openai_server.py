"""A real OpenAI-protocol HTTP server on 127.0.0.1, scriptable per request, for provider tests."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = ["LoggedRequest", "OpenAIServer", "Reply", "openai_server", "running_openai_server"]


@dataclass
class Reply:
    """One scripted answer: an assistant message, or an error status, a delay, a broken body."""

    content: str | None = "ok"
    tool_calls: list[dict[str, Any]] | None = None  # [{"name": ..., "arguments": "{...}"}]
    prompt_tokens: int = 10
    completion_tokens: int = 5
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before anything is written (a hung upstream)
    body: bytes | dict[str, Any] | None = None  # replaces the generated body (malformed replies)
    model: str | None = None  # the `model` field echoed back; defaults to the request's

    def render(self, request: dict[str, Any]) -> dict[str, Any]:
        """The chat.completion JSON body for a 200 reply, or an OpenAI-style error body."""
        if self.status != 200:
            return {
                "error": {
                    "message": f"scripted {self.status}",
                    "type": "scripted",
                    "code": self.status,
                }
            }
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        finish_reason = "stop"
        if self.tool_calls:
            finish_reason = "tool_calls"
            message["tool_calls"] = [
                {
                    "id": call.get("id", f"call_{index}"),
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call.get("arguments", "{}")},
                }
                for index, call in enumerate(self.tool_calls)
            ]
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model or request.get("model", "unknown"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
            },
        }


Script = Reply | Callable[[dict[str, Any]], Reply]


@dataclass(frozen=True)
class LoggedRequest:
    """What the server received: when (time.monotonic()), where, with which headers and body."""

    time: float
    path: str
    headers: dict[str, str]
    json: dict[str, Any] | None


class OpenAIServer:
    """`POST /v1/chat/completions` on a free port; replies come from a queue, then `default`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Script] = deque()
        self._log: list[LoggedRequest] = []
        self._stopping = threading.Event()
        self.default: Script = Reply()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        # A short poll interval: shutdown() waits for one poll, and tests stop a server each.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="openai-server",
            daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The api_base to hand to a client: `http://127.0.0.1:PORT/v1`."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> OpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping on a scripted delay
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def enqueue(self, *replies: Script) -> None:
        """Queue replies for the next requests, in order (after the queue: `default`)."""
        with self._lock:
            self._queue.extend(replies)

    @property
    def requests(self) -> list[LoggedRequest]:
        """A copy of the log of every request received so far."""
        with self._lock:
            return list(self._log)

    def chat_requests(self, model: str | None = None) -> list[LoggedRequest]:
        """The logged chat-completion requests, optionally only those for `model`."""
        return [
            r
            for r in self.requests
            if r.path.endswith("/chat/completions")
            and (model is None or (r.json or {}).get("model") == model)
        ]

    def _next_reply(self, request: dict[str, Any]) -> Reply:
        with self._lock:
            script = self._queue.popleft() if self._queue else self.default
        return script if isinstance(script, Reply) else script(request)

    def _record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log.append(entry)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                server._record(LoggedRequest(time.monotonic(), self.path, dict(self.headers), None))
                self._send(404, {}, json.dumps({"error": {"message": "not found"}}).encode())

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = None
                server._record(LoggedRequest(time.monotonic(), self.path, dict(self.headers), body))
                if not self.path.endswith("/chat/completions") or body is None:
                    self._send(404, {}, json.dumps({"error": {"message": "not found"}}).encode())
                    return
                reply = server._next_reply(body)
                if reply.delay and server._stopping.wait(reply.delay):
                    return
                if body.get("stream") and reply.status == 200 and reply.body is None:
                    self._stream(reply, body)
                    return
                payload = reply.body if reply.body is not None else reply.render(body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self._send(reply.status, reply.headers, data)

            def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    # One connection per request: litellm caches OpenAI clients and drops them
                    # later with keep-alive sockets still open, which pytest reports as unclosed
                    # sockets (ResourceWarning -> error) in whichever test runs the GC.
                    self.send_header("Connection", "close")
                    self.close_connection = True
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test); nothing to tell it

            def _stream(self, reply: Reply, request: dict[str, Any]) -> None:
                """Server-sent events: one chunk per word of the content, then usage, then [DONE]."""
                full = reply.render(request)
                chunks: list[dict[str, Any]] = []
                for index, word in enumerate((reply.content or "").split(" ")):
                    text = word if index == 0 else " " + word
                    chunks.append(
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": text},
                            "finish_reason": None,
                        }
                    )
                chunks.append({"index": 0, "delta": {}, "finish_reason": "stop"})
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for choice in chunks:
                        event = {**full, "object": "chat.completion.chunk", "choices": [choice]}
                        event.pop("usage")
                        self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                    last = {**full, "object": "chat.completion.chunk", "choices": []}
                    self.wfile.write(f"data: {json.dumps(last)}\n\n".encode())
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                    self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


@contextmanager
def running_openai_server() -> Iterator[OpenAIServer]:
    """Start a fake OpenAI server for the `with` block and stop it afterwards."""
    server = OpenAIServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """A fake OpenAI chat-completions server on 127.0.0.1, stopped after the test.

    Other test folders use it with `from tests.support.openai_server import openai_server` in
    their conftest.py.
    """
    with running_openai_server() as server:
        yield server
