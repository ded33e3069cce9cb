"""Terminal views of a run with rich: a live progress observer and the final summary table."""

from __future__ import annotations

import time

from rich import box
from rich.console import Console
from rich.table import Table

from codexflow.runtime.record import cost_text
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
    """Status, duration, tokens, cost and cached per unit, with a totals row.

    The model gets a column only when the run used several; otherwise the title names it, so
    the table fits an 80-column terminal.
    """
    records = list(result.records.values())
    models = sorted({r.model for r in records if r.model})
    title = f"{result.plan} · run {result.run_id} · {result.status}"
    if len(models) == 1:
        title += f" · {models[0]}"
    table = Table(title=title, show_footer=False, box=box.SIMPLE_HEAD)
    columns = [("step", "left"), ("agent", "left"), ("status", "left"), ("secs", "right"),
               ("tokens", "right"), ("cost $", "right"), ("cached", "center")]  # fmt: skip
    if len(models) > 1:
        columns.append(("model", "left"))
    for column, justify in columns:
        table.add_column(column, justify=justify, no_wrap=column in ("step", "agent", "status"))  # type: ignore[arg-type]
    for r in records:
        style = _STYLE.get(r.status, "")
        row = [r.id, r.agent or r.kind, f"[{style}]{r.status}[/]" if style else r.status,
               f"{r.duration:.2f}", str(r.tokens), cost_text([r]), "✓" if r.cached else ""]  # fmt: skip
        table.add_row(*row, *([r.model] if len(models) > 1 else []))
    table.add_section()
    # Cached rows show what their answers cost when they were paid for; this run spent nothing
    # on them, so the totals keep the two apart.
    paid = [r for r in records if not r.cached]
    saved = [r for r in records if r.cached]
    total = ["spent", "", result.status, f"{result.duration:.2f}", str(sum(r.tokens for r in paid)),
             cost_text(paid), ""]  # fmt: skip
    table.add_row(*total, *([""] if len(models) > 1 else []))
    if saved:
        reused = ["saved by the cache", "", "", "", str(sum(r.tokens for r in saved)),
                  cost_text(saved), str(len(saved))]  # fmt: skip
        table.add_row(*reused, *([""] if len(models) > 1 else []), style="cyan")
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
