"""Running one unit's work off the event loop: pool threads that carry the caller's context,
and the direct (`--no-prefect`) attempt loop with timeouts and retries with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from codexflow.agents.step_io import StepCall, StepExecutor, StepResult
from codexflow.errors import BudgetExceeded, CodexflowError
from codexflow.runtime.durable import CURRENT, Journal, UnitContext, secret_values

# cached: answered from the result store, no executor call. budget: stopped by the budget, to be
# submitted again if it is raised. denied: an approval gate said no.
OutcomeKind = Literal["succeeded", "cached", "failed", "budget", "denied"]


@dataclass
class Outcome:
    """How a unit's execution ended."""

    kind: OutcomeKind
    result: StepResult | None = None
    error: BaseException | None = None
    attempts: int = 0
    started_at: float | None = None  # wall clock when the work began (first attempt)
    ended_at: float | None = None  # and when it ended


class DaemonPool:
    """Worker threads for executor calls. Daemon threads: a hung provider call can never keep
    the process alive after a stop (a ThreadPoolExecutor's workers are joined at exit).
    Kept across runs and grown ahead of time: `Thread.start()` waits for the new thread to
    get the GIL, ~1 ms each while 100 others are finishing, which would sit on the critical path."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.workers = 0
        self.idle = 0

    def ensure(self, count: int) -> None:
        with self.lock:
            missing = count - self.workers
            self.workers += max(0, missing)
            self.idle += max(0, missing)
        for _ in range(missing):
            threading.Thread(target=self._work, name="codexflow-step", daemon=True).start()

    def submit(self, job: Callable[[], None]) -> None:
        with self.lock:
            grow = self.idle == 0
            if not grow:
                self.idle -= 1
        if grow:
            self.ensure(self.workers + 1)
            with self.lock:
                self.idle -= 1
        self.jobs.put(job)

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                job()
            finally:
                with self.lock:
                    self.idle += 1


POOL = DaemonPool()


def in_thread(fn: Callable[[], Any]) -> asyncio.Future[Any]:
    """Run `fn` on a pool thread, in a copy of the caller's context (the unit being run, and
    Prefect's task-run context for its logger); the future settles on the calling event loop."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():
            return  # timed out or cancelled: the late answer is dropped
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def job() -> None:
        value, error = None, None
        try:
            value = context.run(fn)
        except BaseException as exc:
            error = exc
        # A stopped run may have closed its loop while this call ran on: the result is
        # already in the store (`fn` wrote it), so there is nobody left to tell.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, value, error)

    POOL.submit(job)
    return future


def retryable(error: BaseException) -> bool:
    """Our own errors are final: providers already retried and fell back (stacking retry
    layers multiplies requests), spec and tool-permission errors will not heal."""
    return not isinstance(error, CodexflowError)


async def attempt(
    executor: StepExecutor,
    call: StepCall,
    unit_id: str,
    journal: Journal | None,
    log: Any = None,
) -> StepResult:
    """One attempt of a unit: the executor call on a pool thread, with the unit's journal and
    logger in its context. When the attempt is given up (timeout, cancel), the thread cannot be
    killed, but it makes no further model request or tool call."""
    unit = UnitContext(unit_id, journal, log, secrets=secret_values())
    if journal is not None:
        journal.rewind()
    token = CURRENT.set(unit)
    try:
        result: StepResult = await in_thread(lambda: executor.execute(call))
        return result
    except BaseException:
        unit.cancelled.set()
        raise
    finally:
        CURRENT.reset(token)


async def execute_unit(
    executor: StepExecutor,
    call: StepCall,
    unit_id: str,
    journal: Journal | None,
    stopping: Callable[[], bool],
) -> Outcome:
    """The direct engine's attempts: the step's timeout, retries with backoff and jitter (the
    Prefect engine gives both to Prefect's task retries instead)."""
    step = call.step
    attempts = 0
    began = time.time()
    while True:
        attempts += 1
        try:
            result = await asyncio.wait_for(
                attempt(executor, call, unit_id, journal), timeout=step.timeout or None
            )
            return Outcome("succeeded", result, None, attempts, began, time.time())
        except BudgetExceeded as exc:
            return Outcome("budget", error=exc, attempts=attempts)
        except TimeoutError:
            error: BaseException = TimeoutError(
                f"step {step.id} timed out after {step.timeout:g} s"
            )
        except Exception as exc:
            error = exc
        if attempts > step.retries or not retryable(error) or stopping():
            return Outcome("failed", None, error, attempts, began, time.time())
        await asyncio.sleep(backoff(step.retry_delay, attempts))


def backoff(base: float, attempts: int) -> float:
    """Exponential backoff with jitter, so parallel retries against one provider spread out."""
    return base * (2 ** (attempts - 1)) * random.uniform(0.5, 1.5)
