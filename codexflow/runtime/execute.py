"""Running one unit off the event loop: a daemon thread per call, timeouts, retries with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from codexflow.agents.step_io import StepCall, StepExecutor, StepResult
from codexflow.errors import BudgetExceeded, CodexflowError

OutcomeKind = Literal["succeeded", "failed", "budget", "stopped"]


@dataclass
class Outcome:
    """How a unit's execution ended."""

    kind: OutcomeKind
    result: StepResult | None = None
    error: BaseException | None = None
    attempts: int = 0


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
    """Run `fn` on a pool thread; the future settles on the calling event loop."""
    loop = asyncio.get_running_loop()
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
            value = fn()
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


async def execute_unit(
    executor: StepExecutor,
    call: StepCall,
    after: Callable[[StepResult], None],
    stopping: Callable[[], bool],
) -> Outcome:
    """Call the executor with the step's timeout and retries. `after` runs in the worker thread
    right after a success (the store write), so a result is on disk before anyone hears of it."""
    step = call.step
    attempts = 0
    while True:
        attempts += 1

        def work() -> StepResult:
            result = executor.execute(call)
            after(result)
            return result

        try:
            result = await asyncio.wait_for(in_thread(work), timeout=step.timeout or None)
            return Outcome("succeeded", result=result, attempts=attempts)
        except BudgetExceeded as exc:
            return Outcome("budget", error=exc, attempts=attempts)
        except TimeoutError:
            error: BaseException = TimeoutError(
                f"step {step.id} timed out after {step.timeout:g} s"
            )
        except Exception as exc:
            error = exc
        if attempts > step.retries or not retryable(error) or stopping():
            return Outcome("failed", error=error, attempts=attempts)
        # Exponential backoff with jitter, so parallel retries against one provider spread out.
        delay = step.retry_delay * (2 ** (attempts - 1)) * random.uniform(0.5, 1.5)
        await asyncio.sleep(delay)
