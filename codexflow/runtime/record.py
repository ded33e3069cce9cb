"""The run's record on disk: `<state_dir>/runs/<run-id>/` with steps/*.json, summary.json, report.md."""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path
from typing import Any

from codexflow.runtime.store import write_json_atomic
from codexflow.runtime.types import RunResult, StepRecord

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\[\]*-]")


def cost_text(records: list[StepRecord], dollar: str = "") -> str:
    """What some units cost: `0.0123`, `unknown` when no price is known, `≥0.0123` when only
    some are (a model without a price would otherwise look free)."""
    total = sum(r.cost_usd for r in records if r.cost_known)
    if all(r.cost_known for r in records):
        return f"{dollar}{total:.4f}"
    if not any(r.cost_known and r.cost_usd for r in records):
        return "unknown"
    return f"≥{dollar}{total:.4f}"


def _usd_total(records: list[StepRecord]) -> float | None:
    """The sum for summary.json; None (null) when some unit's price is unknown."""
    if not all(r.cost_known for r in records):
        return None
    return round(sum(r.cost_usd for r in records), 6)


def new_run_id() -> str:
    """Sortable by time (to the millisecond), unique across processes: 20261124-004613.042-3f9a1c."""
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    return f"{stamp}.{int(now * 1000) % 1000:03d}-{secrets.token_hex(3)}"


def file_name(unit_id: str) -> str:
    return _UNSAFE.sub("_", unit_id) + ".json"


class RunRecord:
    """Writes each finished unit as it arrives, and the summary and report at the end."""

    def __init__(self, state_dir: Path, run_id: str) -> None:
        from codexflow.tools.confine import make_dirs_beneath

        self.run_id = run_id
        self.state_dir = Path(state_dir)
        self.dir = self.state_dir / "runs" / run_id
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # Beneath the state dir nothing is followed: a planted `runs` symlink is refused.
        make_dirs_beneath(self.state_dir, f"runs/{run_id}/steps")

    def write_step(self, record: StepRecord) -> None:
        data = record.summary()
        data["output"] = record.output
        write_json_atomic(self.dir / "steps" / file_name(record.id), data, root=self.state_dir)

    def write_summary(self, result: RunResult) -> None:
        from codexflow.tools.confine import write_file_beneath

        write_json_atomic(self.dir / "summary.json", summary(result), root=self.state_dir)
        text = report(result).encode("utf-8", "backslashreplace")
        write_file_beneath(self.state_dir, f"runs/{self.run_id}/report.md", text)


def summary(result: RunResult) -> dict[str, Any]:
    records = list(result.records.values())
    return {
        "plan": result.plan,
        "run_id": result.run_id,
        "status": result.status,
        "reason": result.reason,
        "duration": round(result.duration, 4),
        "prefect_flow_run_id": result.prefect_flow_run_id,
        "ui_url": result.ui_url,
        "totals": {
            "steps": len(records),
            "executed": result.executed,
            "cached": sum(r.cached for r in records),
            "prompt_tokens": sum(r.prompt_tokens for r in records),
            "completion_tokens": sum(r.completion_tokens for r in records),
            "cost_usd": _usd_total(records),
            # What this run paid for; the figures above include what cached units cost once.
            "spent_tokens": sum(r.tokens for r in records if not r.cached),
            "spent_usd": _usd_total([r for r in records if not r.cached]),
            "cost_known": all(r.cost_known for r in records),
        },
        "steps": [r.summary() for r in records],
    }


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def report(result: RunResult) -> str:
    """Markdown: the same table as the terminal summary, for report.md and the Prefect artifact."""
    records = list(result.records.values())
    lines = [
        f"# {result.plan} — run {result.run_id}",
        "",
        f"**Status:** {result.status}" + (f" ({result.reason})" if result.reason else ""),
        f"  **Duration:** {result.duration:.2f} s",
        f"  **Executed:** {result.executed}  **Cached:** {sum(r.cached for r in records)}",
        f"  **Spent:** {sum(r.tokens for r in records if not r.cached)} tokens, "
        f"{cost_text([r for r in records if not r.cached], '$')}",
        f"  **Reused from the cache:** {sum(r.tokens for r in records if r.cached)} tokens, "
        f"{cost_text([r for r in records if r.cached], '$')}",
        "",
        "| step | agent | status | duration (s) | tokens | cost ($) | cached | model | error |",
        "|---|---|---|---:|---:|---:|---|---|---|",
    ]
    for r in records:
        row = [r.id, r.agent or r.kind, r.status, f"{r.duration:.2f}", r.tokens, cost_text([r]),
               "yes" if r.cached else "", r.model, r.error]  # fmt: skip
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"
