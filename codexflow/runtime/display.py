"""Terminal views of a run with rich: a live progress observer and the final summary table."""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

from codexflow.runtime.types import RunResult, StepRecord, StepStatus

_STYLE: dict[str, str] = {
    "succeeded": "green",
    "cached": "cyan",
    "failed": "bold red",
    "denied": "yellow",
    "skipped": "dim",
    "not_run": "dim",
}


def render_summary(result: RunResult) -> Table:
    """Status, duration, tokens, cost and cached per unit, with a totals row."""
    table = Table(title=f"{result.plan} · run {result.run_id} · {result.status}", show_footer=False)
    for column, justify in (("step", "left"), ("agent", "left"), ("status", "left"),
                            ("time (s)", "right"), ("tokens", "right"), ("cost ($)", "right"),
                            ("cached", "center"), ("model", "left")):  # fmt: skip
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in result.records.values():
        style = _STYLE.get(r.status, "")
        table.add_row(
            r.id, r.agent or r.kind, f"[{style}]{r.status}[/]" if style else r.status,
            f"{r.duration:.2f}", str(r.tokens), f"{r.cost_usd:.4f}", "✓" if r.cached else "", r.model,
        )  # fmt: skip
    records = list(result.records.values())
    table.add_section()
    table.add_row(
        "total", "", result.status, f"{result.duration:.2f}", str(sum(r.tokens for r in records)),
        f"{sum(r.cost_usd for r in records):.4f}", str(sum(r.cached for r in records)), "",
    )  # fmt: skip
    return table


class ConsoleObserver:
    """Prints one line per unit as it starts and ends: simple, and safe to pipe to a file."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.started: dict[str, float] = {}

    def on_step_start(self, step_id: str, name: str) -> None:
        self.started[step_id] = time.perf_counter()
        self.console.print(f"[dim]▶ {name}[/]")

    def on_step_end(self, step_id: str, status: StepStatus, record: StepRecord) -> None:
        style = _STYLE.get(status, "")
        elapsed = time.perf_counter() - self.started.pop(step_id, time.perf_counter())
        detail = f" {elapsed:.2f}s" if status in ("succeeded", "failed") else ""
        error = f" — {record.error}" if record.error else ""
        self.console.print(f"[{style}]■ {record.name}: {status}{detail}{error}[/]")
