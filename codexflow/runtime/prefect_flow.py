"""The one module that imports Prefect: a flow per run, a task run per unit, the report artifact.

Prefect records; it does not schedule. The flow runs on its own thread and event loop, and
each unit's execution on codexflow's scheduler is mirrored by a task run that waits for it.
So the flow-run start (~100-350 ms of API calls), the task-run engine (~5 ms of CPU per step)
and the server's event ingestion all stay off the critical path: the work starts at once,
and the scheduler hears of each result the moment it lands.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from codexflow.runtime.execute import Outcome
from codexflow.runtime.prefect_env import server_url
from codexflow.runtime.units import Unit

_keys = itertools.count()
logger = logging.getLogger(__name__)


def _step_task(running: dict[str, asyncio.Future[Outcome]]) -> Any:
    from prefect import task
    from prefect.cache_policies import NONE
    from prefect.states import Cancelled, Completed, Failed

    # No Prefect caching or result persistence: the cache is codexflow's own JSON store
    # (Prefect's default policy includes the run id, and its file locks outlive killed runs).
    @task(name="step", task_run_name="{name}", cache_policy=NONE, persist_result=False, retries=0)
    async def step(key: str, name: str) -> Any:
        outcome = await running.pop(key)
        if outcome.kind == "failed":
            return Failed(message=f"{type(outcome.error).__name__}: {outcome.error}")
        if outcome.kind == "budget":  # it runs again, as a new task run, if the budget is raised
            return Cancelled(message=f"budget reached: {outcome.error}")
        return Completed(message=outcome.kind)

    return step


class PrefectMirror:
    """A Prefect flow run on its own thread that records the units the scheduler runs."""

    def __init__(
        self, name: str, run_name: str, on_started: Callable[[str], None] | None = None
    ) -> None:
        self.name, self.run_name, self.on_started = name, run_name, on_started
        self.flow_run_id: str | None = None
        self.started = threading.Event()  # the flow run exists (or failed to start)
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._inbox: list[Any] = []  # (name, future) per unit, pause requests, None to end
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poke: asyncio.Event | None = None
        self._report: tuple[str, str, str] | None = None  # markdown, description, run status
        self._thread = threading.Thread(target=self._main, name="codexflow-prefect", daemon=True)

    # -- called from the scheduler's thread ------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    async def wrap(self, unit: Unit, body: Callable[[], Awaitable[Outcome]]) -> Outcome:
        """The scheduler's `wrap`: start the work now, tell the flow about it, return its outcome."""
        work = asyncio.ensure_future(body())
        mirrored: concurrent.futures.Future[Outcome] = concurrent.futures.Future()

        def landed(done: asyncio.Future[Outcome]) -> None:
            if done.cancelled():
                mirrored.cancel()
            elif done.exception() is not None:
                mirrored.set_result(Outcome("failed", error=done.exception(), attempts=1))
            else:
                mirrored.set_result(done.result())

        work.add_done_callback(landed)
        self._send((unit.name, mirrored))
        return await work

    def finish(self, markdown: str, description: str, status: str, timeout: float = 30.0) -> None:
        """Publish the report, end the flow run, wait for Prefect to finish recording (bounded)."""
        self._report = (markdown, description, status)
        self._send(None)
        self._thread.join(timeout)

    def pause(self, message: str, timeout: float) -> concurrent.futures.Future[float | None]:
        """Pause the flow run until someone types a new budget into the Prefect UI (or the API
        resumes it with `{"max_usd": ...}`); None when declined or after `timeout` seconds."""
        answer: concurrent.futures.Future[float | None] = concurrent.futures.Future()
        self._send(("pause", answer, message, timeout))
        return answer

    def _send(self, item: Any) -> None:
        with self._lock:
            self._inbox.append(item)
            if self._loop is not None and self._poke is not None:
                self._loop.call_soon_threadsafe(self._poke.set)

    # -- the Prefect thread ----------------------------------------------------------------------
    def _main(self) -> None:
        from prefect import flow
        from prefect.context import SyncClientContext
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

        @flow(name=self.name, flow_run_name=self.run_name, persist_result=False,
              validate_parameters=False, log_prints=False)  # fmt: skip
        async def codexflow_run() -> Any:
            return await self._record()

        # An async flow avoids the ~1 s heartbeat-thread join of sync flows; no heartbeat at all
        # leaves nothing to join. prefect 3.8.8 opens a sync API client at each flow start
        # (results.py, `_read_server_default_result_storage_block_id`) and never closes it; its
        # socket then raises a ResourceWarning wherever the garbage collector finds it. In a
        # sync client context Prefect reuses one client, closed when the context ends.
        try:
            for attempt in (1, 2):
                try:
                    with (
                        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
                        _quiet_task_failures(),
                        SyncClientContext.get_or_create(),
                    ):
                        asyncio.run(codexflow_run(return_state=True))  # type: ignore[arg-type]
                    self.error = None
                    break
                except BaseException as exc:  # Prefect could not run: the work goes on unrecorded
                    self.error = exc
                    # A flow run that never started consumed nothing from the inbox, so it can
                    # simply start again. Seen once in CI: CPython 3.11.7's AST race (gh-106905,
                    # fixed in 3.11.8) raised a SystemError while Prefect set the flow run up.
                    if self.flow_run_id is not None or attempt == 2:
                        break
                    logger.debug("Prefect flow run did not start (%r); trying once more", exc)
        finally:
            self.started.set()

    async def _record(self) -> Any:
        from prefect.context import get_run_context
        from prefect.states import Cancelled, Completed, Failed

        self.flow_run_id = str(get_run_context().flow_run.id)  # type: ignore[union-attr]
        running: dict[str, asyncio.Future[Outcome]] = {}
        step = _step_task(running)
        recording: set[asyncio.Task[Any]] = set()
        steps = 0  # task runs started (pauses are in `recording` too)
        with self._lock:
            self._loop, self._poke = asyncio.get_running_loop(), asyncio.Event()
        self.started.set()
        if self.on_started is not None:
            with contextlib.suppress(Exception):  # an observer's bug must not lose the history
                self.on_started(self.flow_run_id)
        done = False
        while not done:
            await self._poke.wait()
            self._poke.clear()
            with self._lock:
                items, self._inbox = self._inbox, []
            for item in items:
                if item is None:
                    done = True
                    continue
                if item[0] == "pause":  # in the flow's context, like the task runs
                    recording.add(asyncio.ensure_future(_pause_for_budget(*item[1:])))
                    continue
                name, mirrored = item
                key = f"u{next(_keys)}"
                running[key] = asyncio.wrap_future(mirrored)
                # Created inside the flow's task: the task run belongs to this flow run.
                recording.add(asyncio.ensure_future(step(key=key, name=name, return_state=True)))
                steps += 1
        if recording:
            await asyncio.wait(recording, timeout=10.0)
        markdown, description, status = self._report or ("", "", "succeeded")
        with contextlib.suppress(Exception):  # history is a convenience, never a failure
            if markdown:
                await _publish(f"codexflow-{self.name}", markdown, description)
            if server_url() is None:
                await _recorded(self.flow_run_id, steps, timeout=15.0)
        if status == "succeeded":
            return Completed(message=description)
        if status in (
            "interrupted",
            "budget_reached",
        ):  # resumable: a re-run picks up from the cache
            return Cancelled(message=description)
        return Failed(message=description)


async def _pause_for_budget(
    answer: concurrent.futures.Future[float | None], message: str, timeout: float
) -> None:
    from prefect.flow_runs import apause_flow_run
    from prefect.input import RunInput
    from pydantic import Field

    class BudgetIncrease(RunInput):
        """The run reached its budget. Enter a new limit in USD to go on, or leave it empty to
        stop (completed steps are kept; a later apply resumes)."""

        max_usd: float | None = Field(None, description=f"New budget in USD. {message}")

    try:
        reply = await apause_flow_run(
            wait_for_input=BudgetIncrease, timeout=max(1, int(timeout)), poll_interval=1
        )
        answer.set_result(reply.max_usd if reply is not None else None)
    except Exception:  # timed out, or the server refused the pause: stop cleanly
        answer.set_result(None)


async def _recorded(flow_run_id: str, count: int, timeout: float) -> None:
    """Wait until the server has stored every task run's final state. Task-run states travel
    as events that the server ingests later; the embedded server dies with this process, and
    what it had not stored by then would be missing from the history."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = asyncio.get_running_loop().time() + timeout
    async with get_client() as client:
        while asyncio.get_running_loop().time() < deadline:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                limit=count + 1,
            )
            if sum(1 for run in runs if run.state is not None and run.state.is_final()) >= count:
                return
            await asyncio.sleep(0.1)


async def _publish(key: str, markdown: str, description: str) -> None:
    """The run's report as a Prefect markdown artifact, so the UI shows the same table."""
    from prefect.artifacts import acreate_markdown_artifact

    await acreate_markdown_artifact(markdown=markdown, key=key, description=description)


@contextlib.contextmanager
def _quiet_task_failures() -> Iterator[None]:
    """A failed step is reported in codexflow's summary; Prefect would also print an ERROR with
    an empty traceback for each one. The task run's Failed state and message still reach the UI."""
    loggers = [logging.getLogger(name) for name in ("prefect.task_runs", "prefect.flow_runs")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        if not logger.isEnabledFor(logging.INFO):  # verbose runs keep Prefect's own lines
            logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
