"""Plan -> run: dependency-driven scheduling, a JSON result cache, Prefect flow runs, run records.

Importing this package does not import Prefect: only `run_plan(..., engine="prefect")` does.
"""

from __future__ import annotations

from codexflow.runtime.display import ConsoleObserver, render_summary
from codexflow.runtime.run import run_plan
from codexflow.runtime.store import ResultStore, cache_key
from codexflow.runtime.types import (
    NullObserver,
    Observer,
    RunOptions,
    RunResult,
    RunStatus,
    StepRecord,
    StepStatus,
)
from codexflow.runtime.units import cache_status

__all__ = [
    "ConsoleObserver",
    "NullObserver",
    "Observer",
    "ResultStore",
    "RunOptions",
    "RunResult",
    "RunStatus",
    "StepRecord",
    "StepStatus",
    "cache_key",
    "cache_status",
    "render_summary",
    "run_plan",
]
