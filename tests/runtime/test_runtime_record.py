"""The run's record on disk and the summary table."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from runtime_support import FakeExecutor, six_step_plan

from codexflow.errors import ProviderError
from codexflow.runtime import RunOptions, render_summary, run_plan
from codexflow.runtime.display import ConsoleObserver


def test_run_directory_has_steps_summary_and_report(tmp_path: Path) -> None:
    options = RunOptions(state_dir=tmp_path / "state", engine="local", run_id="r1")
    result = run_plan(
        six_step_plan(), FakeExecutor(raise_on={"join": ProviderError("no")}), options
    )
    run_dir = tmp_path / "state" / "runs" / "r1"
    assert result.run_dir == run_dir
    step = json.loads((run_dir / "steps" / "work[1].json").read_text())
    assert (
        step["status"] == "succeeded"
        and step["output"].endswith("|y>")
        and step["model"] == "fake/model"
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["totals"]["executed"] == 7 and summary["totals"]["prompt_tokens"] == 18
    rows = {row["id"]: row for row in summary["steps"]}
    assert rows["join"]["status"] == "failed" and "no" in rows["join"]["error"]
    assert rows["final"]["status"] == "skipped"
    assert set(rows) == {"plan", "work[0]", "work[1]", "work[2]", "a", "b", "join", "final"}
    report = (run_dir / "report.md").read_text()
    assert "| join | worker | failed |" in report and report.startswith("# six — run r1")


def test_render_summary_and_console_observer(tmp_path: Path) -> None:
    console = Console(record=True, width=200)
    options = RunOptions(state_dir=tmp_path / "state", engine="local")
    result = run_plan(six_step_plan(), FakeExecutor(), options, ConsoleObserver(console))
    console.print(render_summary(result))
    text = console.export_text()
    assert "▶ worker: work[2]" in text and "■ worker: final: succeeded" in text
    assert "spent" in text and "0.0080" in text and "saved by the cache" not in text
    cached = run_plan(six_step_plan(), FakeExecutor(), options)
    console = Console(record=True, width=200)
    console.print(render_summary(cached))
    text = console.export_text()
    assert text.count("✓") == 8
    # Nothing was paid for again: the 8 cached units' spend is shown as saved, not spent.
    assert "saved by the cache" in text and "0.0080" in text
    spent = next(line for line in text.splitlines() if line.strip().startswith("spent"))
    assert "0.0000" in spent
