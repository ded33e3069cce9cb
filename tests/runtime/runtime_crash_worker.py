"""A run of the six-step plan in its own process, for the crash tests.

argv: state-dir log-file out-file [latency [engine]]"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from runtime_support import FakeExecutor, six_step_plan

from codexflow.runtime import RunOptions, run_plan


class Announcer:
    """Writes the Prefect flow run id to a file as soon as the flow run exists, and each unit
    to `<out>.started` when it starts and to `<out>.stored` when it has ended with its result
    stored (the runtime reports a unit's end only after the store write): what the tests
    synchronise on instead of sleeping."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _note(self, suffix: str, unit: str) -> None:
        with self.path.with_suffix(suffix).open("a", encoding="utf-8") as handle:
            handle.write(unit + "\n")

    def on_step_start(self, step_id: str, name: str) -> None:
        self._note(".started", step_id)

    def on_step_end(self, step_id: str, status: str, record: object) -> None:
        if status in ("succeeded", "cached"):
            self._note(".stored", step_id)

    def on_flow_run(self, flow_run_id: str, ui_url: str | None) -> None:
        self.path.write_text(flow_run_id, encoding="utf-8")


def main(argv: list[str]) -> int:
    state, log, out = (Path(a) for a in argv[:3])
    latency = float(argv[3]) if len(argv) > 3 else 0.3
    engine = argv[4] if len(argv) > 4 else "local"
    executor = FakeExecutor(latency=latency, log=log)
    options = RunOptions(state_dir=state, engine=engine, grace_seconds=5)  # type: ignore[arg-type]
    result = run_plan(six_step_plan(), executor, options, Announcer(out.with_suffix(".flow")))
    report = {
        "status": result.status,
        "outputs": result.outputs,
        "flow_run": result.prefect_flow_run_id,
    }
    out.write_text(json.dumps(report), encoding="utf-8")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
