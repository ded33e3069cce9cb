"""Gateway fixtures: a spec dir of offline specs, a gateway over it, the HTTP API on a real socket."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from codexflow.gateway import Gateway, RunManager
from codexflow.gateway.http_api import create_app

SPECS = Path(__file__).resolve().parent / "specs"

# The Prefect-engine test: an isolated Prefect home, set before anything imports prefect.
_PREFECT_HOME = tempfile.mkdtemp(prefix="codexflow-gateway-prefect-")
atexit.register(shutil.rmtree, _PREFECT_HOME, ignore_errors=True)
os.environ.setdefault("PREFECT_HOME", _PREFECT_HOME)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    """A copy of tests/gateway/specs (hello, gated, broken and their scripted replies)."""
    target = tmp_path / "specs"
    shutil.copytree(SPECS, target)
    return target


@pytest.fixture
def gateway(spec_dir: Path, tmp_path: Path) -> Iterator[Gateway]:
    manager = RunManager(tmp_path / "state", engine="local", approval_timeout=120)
    yield Gateway(spec_dir, manager)
    manager.shutdown(timeout=60)


@contextlib.contextmanager
def serving(make_app: Callable[[int], Any], host: str = "127.0.0.1") -> Iterator[str]:
    """Serve the ASGI app `make_app(port)` with uvicorn on a free port of `host`; yields its URL.

    The socket is bound and listening before the server thread starts, so a client may connect
    at once (the kernel queues the connection until uvicorn accepts it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        make_app(port), log_level="warning", lifespan="off", timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture
def http_api(gateway: Gateway) -> Iterator[Callable[..., str]]:
    """`start(host=..., token=...)`: the API of `gateway` on a real socket; returns its base URL."""
    with contextlib.ExitStack() as stack:

        def start(host: str = "127.0.0.1", token: str | None = None) -> str:
            return stack.enter_context(
                serving(lambda port: create_app(gateway, host=host, port=port, token=token), host)
            )

        yield start
