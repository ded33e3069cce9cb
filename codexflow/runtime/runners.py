"""Unit runners: what executes and records each unit the scheduler submits.

`PrefectRunner` (runtime/prefect_tasks.py) makes every unit a Prefect task run: Prefect's
cache, retries and states. `LocalRunner` is the `--no-prefect` engine: the very same units,
cache files, journal and attempt body, executed directly (no history), for tests and quick
runs. Both share `attempt` (runtime/execute.py) and the result store's format.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from codexflow.agents.step_io import StepCall, StepExecutor
from codexflow.compiler.plan import Step
from codexflow.runtime.durable import Journal, make_durable
from codexflow.runtime.execute import Outcome, execute_unit
from codexflow.runtime.store import ResultStore
from codexflow.runtime.units import Unit

# A gate's decision: (approved, who or what decided), asked only when the gate runs.
Decide = Callable[[Step], Awaitable[tuple[bool, str]]]


class UnitRunner(Protocol):
    async def execute(self, unit: Unit, call: StepCall, key: str, upstream: list[str]) -> Outcome:
        """Run one unit to its end (cached, succeeded, failed, or stopped by the budget)."""
        ...

    async def gate(self, unit: Unit, upstream: list[str], decide: Decide) -> Outcome:
        """An approval gate: succeeded when approved, denied otherwise."""
        ...

    async def skip(self, unit_id: str, name: str, upstream: list[str], reason: str) -> None:
        """Record a unit that will not run because something above it failed or was denied."""
        ...


class LocalRunner:
    """Units executed directly on this event loop's worker threads."""

    def __init__(
        self,
        executor: StepExecutor,
        state_dir: Path,
        fresh: bool = False,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        make_durable(executor)
        self.executor, self.state_dir, self.fresh, self.stopping = (
            executor,
            Path(state_dir),
            fresh,
            stopping,
        )
        self.store = ResultStore(state_dir)

    async def execute(self, unit: Unit, call: StepCall, key: str, upstream: list[str]) -> Outcome:
        step = unit.step
        if step.cache and not self.fresh:
            cached = self.store.get(key)
            if cached is not None:
                return Outcome("cached", result=cached)
        journal = Journal.for_key(self.state_dir, key) if step.cache else None
        if journal is not None and self.fresh:
            journal.discard()
        outcome = await execute_unit(self.executor, call, unit.id, journal, self.stopping)
        if outcome.kind == "succeeded" and outcome.result is not None and step.cache:
            self.store.put(key, unit.id, outcome.result)
            if journal is not None:
                journal.discard()
        return outcome

    async def gate(self, unit: Unit, upstream: list[str], decide: Decide) -> Outcome:
        approved, how = await decide(unit.step)
        if approved:
            return Outcome("succeeded", attempts=1)
        return Outcome("denied", error=RuntimeError(how), attempts=1)

    async def skip(self, unit_id: str, name: str, upstream: list[str], reason: str) -> None:
        return None
