"""A run of N independent steps on provider `fake` in its own process, for the global-limit tests.

argv: state-dir calls-file out-file steps latency provider-limit [name]
Each executor call appends `start <unit> <pid> <time>` and `end ...` lines to calls-file.
With BARRIER_DIR and BARRIER_COUNT set, waits until that many workers are ready to run."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from runtime_support import FakeExecutor, S, make_plan

from codexflow.agents.step_io import StepCall, StepResult
from codexflow.runtime import RunOptions, run_plan


class Timed(FakeExecutor):
    calls_file: Path | None = None

    def execute(self, call: StepCall) -> StepResult:
        assert self.calls_file is not None
        self._note("start", call)
        try:
            return super().execute(call)
        finally:
            self._note("end", call)

    def _note(self, what: str, call: StepCall) -> None:
        with self.calls_file.open("a", encoding="utf-8") as handle:  # type: ignore[union-attr]
            handle.write(f"{what} {call.step.id} {os.getpid()} {time.time():.6f}\n")


def main(argv: list[str]) -> int:
    state, calls, out = (Path(a) for a in argv[:3])
    steps, latency, limit = int(argv[3]), float(argv[4]), int(argv[5])
    name = argv[6] if len(argv) > 6 else "wide"
    plan = make_plan(name, [S(f"s{i}", prompt=f"{name} {i}") for i in range(steps)])
    executor = Timed(latency=latency)
    executor.calls_file = calls
    options = RunOptions(
        state_dir=state, engine="prefect", provider_limits={"fake": limit} if limit else {},
        grace_seconds=2,
        max_concurrency=steps, fresh=True,
    )  # fmt: skip
    barrier = os.environ.get("BARRIER_DIR")  # start together with the other worker(s)
    if barrier:
        Path(barrier, f"{name}.ready").touch()
        deadline = time.monotonic() + 30
        while len(list(Path(barrier).glob("*.ready"))) < int(os.environ["BARRIER_COUNT"]):
            assert time.monotonic() < deadline, "the other worker never got ready"
            time.sleep(0.01)
        import prefect  # noqa: F401  (the environment is set: the slow import before the start)
    started = time.perf_counter()
    result = run_plan(plan, executor, options)
    report = {
        "status": result.status,
        "duration": time.perf_counter() - started,
        "errors": {k: r.error for k, r in result.records.items() if r.error},
        "flow_run": result.prefect_flow_run_id,
    }
    out.write_text(json.dumps(report), encoding="utf-8")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
