"""The summary table and the run record: figures never cut, COLUMNS honoured, unknown cost
shown as unknown (never as $0.0000)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from codexflow.runtime.display import render_summary
from codexflow.runtime.record import RunRecord
from codexflow.runtime.types import RunResult, StepRecord

IDS = ["plan", "refactor[0]", "review.decompose", "review.reviewer", "docs.ring[2].writer"]
LONG = "docs.ring[2].copy_editor"


def result(tmp_path: Path, ids: list[str], unknown: frozenset[str] = frozenset()) -> RunResult:
    records = {
        sid: StepRecord(
            id=sid,
            step=sid,
            task=sid,
            kind="agent",
            agent="copy_editor",
            name=sid,
            status="succeeded",
            duration=12.3456,
            prompt_tokens=123_456,
            completion_tokens=7_890,
            cost_usd=0.0 if sid in unknown else 0.1234,
            cost_known=sid not in unknown,
            model="openai/gpt-4o-mini",
        )
        for sid in ids
    }
    return RunResult(
        plan="refactor",
        run_id="20261201-215959.123-abcdef",
        status="succeeded",
        records=records,
        outputs={},
        duration=123.4,
        run_dir=tmp_path,
    )


def rendered(run: RunResult, console: Console) -> str:
    console.print(render_summary(run))
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def test_80_columns_in_a_pipe_cut_no_figure(tmp_path: Path) -> None:
    text = rendered(result(tmp_path, IDS), Console(file=io.StringIO(), width=80))
    assert "…" not in text
    for sid in IDS:
        assert sid in text  # on one line, whole
    assert "131346" in text and "0.1234" in text and "12.35" in text and "tokens" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_columns_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from codexflow.cli import _out

    monkeypatch.setenv("COLUMNS", "200")
    console = _out()
    console.file = io.StringIO()
    assert console.width == 200
    assert LONG in rendered(result(tmp_path, [*IDS, LONG]), console)
    monkeypatch.setenv("COLUMNS", "70")
    narrow = _out()
    narrow.file = io.StringIO()
    text = rendered(result(tmp_path, [*IDS, LONG]), narrow)
    assert LONG not in text  # folded to fit, not cut
    assert "131346" in text and "…" not in text


def test_unknown_cost_is_unknown_everywhere(tmp_path: Path) -> None:
    run = result(tmp_path, ["plan", "write"], unknown=frozenset({"write"}))
    text = rendered(run, Console(file=io.StringIO(), width=100))
    rows = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert "unknown" in rows["write"] and "0.0000" not in rows["write"]
    assert "≥0.1234" in rows["spent"]  # at least what is known, never a false total
    record = RunRecord(tmp_path, run.run_id)
    record.write_summary(run)
    summary = json.loads((record.dir / "summary.json").read_text(encoding="utf-8"))
    steps = {row["id"]: row for row in summary["steps"]}
    assert steps["write"]["cost_usd"] is None and steps["write"]["cost_known"] is False
    assert summary["totals"]["spent_usd"] is None and summary["totals"]["cost_known"] is False
    report = (record.dir / "report.md").read_text(encoding="utf-8")
    assert "| write |" in report and "unknown" in report.split("| write |", 1)[1].splitlines()[0]
    assert "≥$0.1234" in report
