"""Limits across processes: Prefect global concurrency limits, used only with a Prefect server.

With `PREFECT_API_URL` set, every executor call of a step holds one slot of
`codexflow-provider-<prefix>` (limit: the spec's `providers.<prefix>.max_concurrency`; one
provider, one limit, shared by every spec on the server: the last run to start sets its size)
and one of `codexflow-agent-<spec>-<name>` (limit: the agent's `replicas`; scoped to its spec,
so one spec's `replicas: 2` never changes another's), so several `codexflow apply`
processes sharing the server never exceed the spec's limits together. The in-process limits
of the scheduler still apply first; this module only adds the server's slots around the call.

Slots are leases (prefect 3.8.8, `/v2/concurrency_limits/increment-with-lease`, what
`prefect.concurrency.sync.concurrency` uses): one thread per process renews the held leases
every 20 s; a process killed with SIGKILL stops renewing and the server's repossessor frees its
slots once the lease expires (`LEASE_SECONDS`, the server's minimum of 60 s, plus up to its 15 s
loop). Faster, for the usual crash-and-re-apply: each process notes its lease ids in
`<state-dir>/leases/` in a file it holds an flock on (the kernel drops it when the process
dies); a run starting on that state dir releases at once the leases of files nobody holds.
A process that exits while calls still run (a stop after the grace period) releases their
leases at exit.

The calls go through Prefect's sync client (its connection, base URL and auth) but not through
its retry wrapper, see `_post`: on a Prefect server on SQLite that wrapper turned a 3 ms
acquisition into 2 s whenever it collided with another write.

Prefect is imported only when a run with a server uses this (never on import).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from codexflow.agents.step_io import StepCall, StepExecutor, StepResult
from codexflow.compiler.plan import Plan, Step
from codexflow.errors import CodexflowError
from codexflow.runtime.types import RunOptions

logger = logging.getLogger(__name__)

LEASE_SECONDS = 60.0  # the shortest lease the server accepts; renewed every third of it
ACQUIRE_TIMEOUT = 600.0  # the longest a call waits for a slot when its step has no timeout
MAX_POLL = 1.0  # ask again at least this often while all slots are taken


class GlobalLimitTimeout(CodexflowError):
    """A step waited too long for a slot of a Prefect global concurrency limit."""


def provider_of(step: Step) -> str:
    """The provider prefix of the step's model (`openai` of `openai/gpt-4o`), as the scheduler."""
    return step.model.split("/", 1)[0] if step.model and "/" in step.model else ""


def limit_name(kind: str, name: str) -> str:
    return f"codexflow-{kind}-{name}"


class GlobalLimits:
    """The server's limits for one run: created at start, a slot per limit held per call."""

    def __init__(self, plan: Plan, options: RunOptions, api_url: str) -> None:
        self.api_url = api_url
        self.limits: dict[str, int] = {}  # limit name -> slots
        self.names: dict[str, list[str]] = {}  # step id -> the limits its calls hold
        for step in plan.steps:
            names = []
            if step.agent is not None and step.agent in options.agent_limits:
                names.append(limit_name("agent", f"{plan.name}-{step.agent}"))
                self.limits[names[-1]] = options.agent_limits[step.agent]
            provider = provider_of(step)
            if provider in options.provider_limits:
                names.append(limit_name("provider", provider))
                self.limits[names[-1]] = options.provider_limits[provider]
            if names:
                self.names[step.id] = names
        self.ledger = LeaseLedger(Path(options.state_dir) / "leases")

    def setup(self) -> None:
        """Create or update the limits on the server (idempotent), then free the slots that
        killed runs of this state dir still hold."""
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectAlreadyExists

        with get_client(sync_client=True) as client:
            for name, slots in sorted(self.limits.items()):
                try:
                    client.upsert_global_concurrency_limit_by_name(name, slots)
                except ObjectAlreadyExists:  # another process created it just now
                    client.upsert_global_concurrency_limit_by_name(name, slots)
            for lease_id in self.ledger.reclaim():
                try:
                    client.release_concurrency_slots_with_lease(uuid.UUID(lease_id))
                    logger.info("released slots of lease %s left by a killed run", lease_id)
                except Exception as exc:  # expired already (404), or the server is away
                    logger.debug("lease %s not released: %s", lease_id, exc)

    def wrap(self, executor: StepExecutor) -> StepExecutor:
        return LimitedExecutor(executor, self)

    @contextlib.contextmanager
    def hold(self, step: Step) -> Iterator[None]:
        """One slot of each of the step's limits for the duration of the block."""
        names = self.names.get(step.id)
        if not names:
            yield
            return
        client = _shared_client()
        lease_id = self._acquire(client, step, names)
        self.ledger.add(lease_id)
        RENEWER.add(lease_id)
        try:
            yield
        finally:  # success, failure, or the run's loop giving up on the call (timeout, stop)
            RENEWER.discard(lease_id)
            if self._release(client, lease_id):
                self.ledger.remove(lease_id)

    def _acquire(self, client: Any, step: Step, names: list[str]) -> str:
        import httpx

        wait = step.timeout or ACQUIRE_TIMEOUT
        deadline = time.monotonic() + wait
        while True:
            try:
                response = _post(
                    client,
                    "/v2/concurrency_limits/increment-with-lease",
                    {"names": names, "slots": 1, "mode": "concurrency",
                     "lease_duration": LEASE_SECONDS},
                )  # fmt: skip
            except httpx.HTTPStatusError as exc:
                code = exc.response.status_code
                if code == 423:  # all slots taken: the server says when to ask again
                    pause = min(float(exc.response.headers.get("Retry-After", 1.0)), MAX_POLL)
                elif code in (429, 502, 503, 504):
                    pause = random.uniform(0.005, 0.03)  # refused at once: ask again soon
                else:
                    raise
            except httpx.TransportError:
                pause = 0.5
            else:
                granted = response.json()
                if not granted.get("limits"):  # deleted on the server while we ran
                    raise CodexflowError(
                        f"the Prefect global concurrency limit(s) {', '.join(names)} do not "
                        f"exist on {self.api_url} (deleted during the run?)"
                    )
                return str(granted["lease_id"])
            if time.monotonic() + pause > deadline:
                raise GlobalLimitTimeout(
                    f"step {step.id} waited {wait:g} s for a slot of the Prefect global "
                    f"concurrency limit(s) {', '.join(names)} on {self.api_url}: other runs "
                    "hold them all (`prefect gcl ls` shows them)"
                )
            time.sleep(pause)

    def _release(self, client: Any, lease_id: str) -> bool:
        for attempt in range(20):  # ~2 s of collisions at most; else the lease expires
            try:
                _post(client, "/v2/concurrency_limits/decrement-with-lease", {"lease_id": lease_id})
                return True
            except Exception as exc:
                status = getattr(getattr(exc, "response", None), "status_code", None)
                if status not in (429, 502, 503, 504) or attempt == 19:
                    logger.warning(
                        "could not release Prefect concurrency lease %s: %s", lease_id, exc
                    )
                    return False
                time.sleep(random.uniform(0.005, 0.03))
        return False


def _post(client: Any, path: str, body: dict[str, Any]) -> Any:
    """POST with the Prefect client's connection, base URL and auth, but without its retry
    wrapper: on a 503 it sleeps 2 s before anything else (even with PREFECT_CLIENT_MAX_RETRIES=0),
    and a Prefect server on SQLite answers 503 ("database is locked") whenever an increment
    collides with another write, which a retry 5-30 ms later gets through."""
    import httpx

    http = client._client  # prefect's httpx.Client subclass; its own send() adds the retries
    request = http.build_request("POST", path, json=body)
    if getattr(http, "enable_csrf_support", False):  # a server with CSRF protection on
        http._add_csrf_headers(request)
    response = httpx.Client.send(http, request)
    response.raise_for_status()
    return response


_CLIENT: Any = None
_CLIENT_LOCK = threading.Lock()


def _shared_client() -> Any:
    global _CLIENT
    with _CLIENT_LOCK:
        if _CLIENT is None:
            from prefect.client.orchestration import get_client

            client = get_client(sync_client=True)
            client.__enter__()
            atexit.register(_close_client, client)
            _CLIENT = client
        return _CLIENT


def _close_client(client: Any) -> None:
    with contextlib.suppress(Exception):
        client.__exit__(None, None, None)


class Renewer:
    """One thread per process renews every held lease each `LEASE_SECONDS / 3`: a slow call
    keeps its slots, a killed process stops renewing and the server takes them back."""

    def __init__(self) -> None:
        self.held: set[str] = set()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def add(self, lease_id: str) -> None:
        with self.lock:
            self.held.add(lease_id)
            if self.thread is None:
                atexit.register(self.release_all)  # runs before the client's close (LIFO)
                self.thread = threading.Thread(
                    target=self._run, name="codexflow-lease-renewal", daemon=True
                )
                self.thread.start()

    def discard(self, lease_id: str) -> None:
        with self.lock:
            self.held.discard(lease_id)

    def release_all(self) -> None:
        """At exit: calls still running in daemon threads die with the process, and so do
        their slots (best effort: what fails here is reclaimed by the next run, or expires)."""
        with self.lock:
            held, self.held = list(self.held), set()
        for lease_id in held:
            with contextlib.suppress(Exception):
                _post(_shared_client(), "/v2/concurrency_limits/decrement-with-lease",
                      {"lease_id": lease_id})  # fmt: skip

    def _run(self) -> None:
        while True:
            time.sleep(LEASE_SECONDS / 3)
            with self.lock:
                held = list(self.held)
            if not held:
                continue
            try:
                client = _shared_client()
                for lease_id in held:
                    with self.lock:
                        if lease_id not in self.held:
                            continue
                    try:
                        _post(
                            client,
                            f"/v2/concurrency_limits/leases/{lease_id}/renew",
                            {"lease_duration": LEASE_SECONDS},
                        )
                    except Exception as exc:  # released meanwhile (404), or a hiccup
                        logger.debug("lease %s not renewed: %s", lease_id, exc)
            except Exception as exc:  # the server is away: try again next round
                logger.warning("could not renew Prefect concurrency leases: %s", exc)


RENEWER = Renewer()


class LimitedExecutor:
    """An executor whose calls each hold the step's global slots (retries acquire again)."""

    def __init__(self, inner: StepExecutor, limits: GlobalLimits) -> None:
        self.inner, self.limits = inner, limits

    def execute(self, call: StepCall) -> StepResult:
        with self.limits.hold(call.step):
            return self.inner.execute(call)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


# directory -> this process's ledger file there, open and locked for the process's lifetime
_OWN: dict[Path, tuple[Path, IO[str]]] = {}
_OWN_LOCK = threading.Lock()


class LeaseLedger:
    """The lease ids this process holds, in a file it keeps an flock on for its lifetime:
    a file whose lock can be taken belongs to a dead process, its leases can be released."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _file(self) -> IO[str] | None:
        try:
            import fcntl
        except ImportError:  # no flock (Windows): leases only expire on the server
            return None
        with _OWN_LOCK:
            own = _OWN.get(self.directory)
            if own is not None and own[0].parent.exists():
                return own[1]
            self.directory.mkdir(parents=True, exist_ok=True)
            stem = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            # Locked under a temporary name, then renamed: a reclaiming run never sees it unlocked.
            temporary = self.directory / f"{stem}.tmp"
            handle = temporary.open("a", encoding="utf-8")
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path = temporary.with_suffix(".leases")
            temporary.rename(path)
            _OWN[self.directory] = (path, handle)
            return handle

    def _write(self, line: str) -> None:
        handle = self._file()
        if handle is None:
            return
        with _OWN_LOCK:
            handle.write(line + "\n")
            handle.flush()

    def add(self, lease_id: str) -> None:
        self._write(f"+{lease_id}")

    def remove(self, lease_id: str) -> None:
        self._write(f"-{lease_id}")

    def reclaim(self) -> list[str]:
        """The leases still held by processes that are gone; their files are removed."""
        try:
            import fcntl
        except ImportError:
            return []
        if not self.directory.is_dir():
            return []
        own = _OWN.get(self.directory)
        leases: list[str] = []
        for path in sorted(self.directory.glob("*.leases")):
            if own is not None and path == own[0]:
                continue
            try:
                with path.open("r+", encoding="utf-8") as handle:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except OSError:
                        continue  # alive
                    held: dict[str, None] = {}
                    for line in handle.read().splitlines():
                        if line.startswith("+"):
                            held[line[1:]] = None
                        elif line.startswith("-"):
                            held.pop(line[1:], None)
                    leases.extend(held)
                    path.unlink()
            except FileNotFoundError:
                continue  # another run reclaimed it first
        for stale in self.directory.glob("*.tmp"):  # died between create and rename
            with contextlib.suppress(OSError):
                if time.time() - stale.stat().st_mtime > 60:
                    stale.unlink()
        return leases
