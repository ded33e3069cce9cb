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

    The model gets a column only when the run used several; otherwise the title names it.
    Figures are never cut (a `tok…` column says nothing): when the terminal (or `COLUMNS`, in a
    pipe) is too narrow, the step and agent names wrap instead.
    """
    records = list(result.records.values())
    models = sorted({r.model for r in records if r.model})
    title = f"{result.plan} · run {result.run_id} · {result.status}"
    if len(models) == 1:
        title += f" · {models[0]}"
    columns = [("step", "left"), ("agent", "left"), ("status", "left"), ("secs", "right"),
               ("tokens", "right"), ("cost $", "right"), ("cached", "center")]  # fmt: skip
    if len(models) > 1:
        columns.append(("model", "left"))
    rows: list[tuple[list[str], str]] = []
    for r in records:
        row = [r.id, r.agent or r.kind, r.status, f"{r.duration:.2f}", str(r.tokens),
               cost_text([r]), "✓" if r.cached else ""]  # fmt: skip
        rows.append((row + ([r.model] if len(models) > 1 else []), ""))
    # Cached rows show what their answers cost when they were paid for; this run spent nothing
    # on them, so the totals keep the two apart.
    paid = [r for r in records if not r.cached]
    saved = [r for r in records if r.cached]
    total = ["spent", "", result.status, f"{result.duration:.2f}", str(sum(r.tokens for r in paid)),
             cost_text(paid), ""]  # fmt: skip
    totals = [(total + ([""] if len(models) > 1 else []), "")]
    if saved:
        reused = ["saved by the cache", "", "", "", str(sum(r.tokens for r in saved)),
                  cost_text(saved), str(len(saved))]  # fmt: skip
        totals.append((reused + ([""] if len(models) > 1 else []), "cyan"))
    # Two spaces between columns (the box draws one), none at the edges.
    table = Table(
        title=title, show_footer=False, box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), show_edge=False
    )
    for index, (column, justify) in enumerate(columns):
        widest = max([len(column)] + [len(row[index]) for row, _ in rows + totals])
        if column in ("step", "agent", "model"):
            # Names may wrap (fold) when space is short; never shorter than a readable stub.
            table.add_column(column, justify=justify, overflow="fold", min_width=min(widest, 8))  # type: ignore[arg-type]
        else:
            table.add_column(column, justify=justify, no_wrap=True, min_width=widest)  # type: ignore[arg-type]
    for row, style in rows:
        status_style = _STYLE.get(row[2], "")
        cells = list(row)
        if status_style:
            cells[2] = f"[{status_style}]{row[2]}[/]"
        table.add_row(*cells, style=style or None)
    table.add_section()
    for row, style in totals:
        table.add_row(*row, style=style or None)
    return table


class ConsoleObserver:
    """Prints one line per unit as it starts and ends: simple, and safe to pipe to a file."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.started: dict[str, float] = {}

    def on_step_start(self, step_id: str, name: str) -> None:
        self.started[step_id] = time.perf_counter()
        self.console.print(f"[dim]▶ {name}[/]")

    def on_stopping(self, running: list[str], grace: float) -> None:
        """The first Ctrl-C: say at once what the run now waits for, and how to stop now."""
        waiting = ", ".join(running) if running else "nothing"
        self.console.print(
            f"[yellow]Stopping: nothing new starts; waiting up to {grace:g} s for {waiting} "
            "(results are kept; a re-apply resumes). Press Ctrl-C again to stop now.[/]"
        )

    def on_step_end(self, step_id: str, status: StepStatus, record: StepRecord) -> None:
        style = _STYLE.get(status, "")
        elapsed = time.perf_counter() - self.started.pop(step_id, time.perf_counter())
        detail = f" {elapsed:.2f}s" if status in ("succeeded", "failed") else ""
        error = f" — {record.error}" if record.error else ""
        self.console.print(f"[{style}]■ {record.name}: {status}{detail}{error}[/]")
