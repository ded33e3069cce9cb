"""Runtime benchmark on a mocked LLM: makespan against the ideal list schedule, CPU, first result.

    python bench/runtime_bench.py [--latencies 0 0.1] [--slow] [--engines asyncio local prefect]

Shapes: wide (1 → 98 → 1), layered (10 layers × 10, each step depending on 2 of the previous
layer), chain of 100. Latencies 0 and 100 ms (`--slow` adds 1 s); concurrency 8 and unbounded.
Engines, run in the same process on the same plans:
- asyncio: a plain dependency-driven asyncio executor (no cache, no record): the floor.
- local:   codexflow's units executed directly (`--no-prefect`: cache writes, journal, record).
- prefect: the `apply-spec` flow, every unit a Prefect task run that does the work (Prefect's
           cache, retries, states, logs); the embedded server, or the server of
           PREFECT_API_URL when it is set (run it both ways to compare).
- raw:     Prefect alone, `.submit(wait_for=...)` on its thread pool (`--engines ... raw`).
The ideal is the list schedule with C workers, critical-path first, at the fixed latency.
`makespan` is the run's end (the command could exit), not when the last result was in.
CPU per step is this process's CPU; `srv` adds the embedded Prefect server's (a subprocess);
`first` is the time from the call to the first step's start.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import heapq
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codexflow.agents.step_io import StepCall, StepResult
from codexflow.compiler.plan import Plan, Step
from codexflow.runtime import RunOptions, run_plan


# -- plans ----------------------------------------------------------------------------------
def build(name: str, deps: dict[str, tuple[str, ...]]) -> Plan:
    steps: dict[str, Step] = {}
    for sid, ds in deps.items():
        digest = hashlib.sha256("|".join([sid, *(steps[d].hash for d in ds)]).encode()).hexdigest()
        steps[sid] = Step(
            id=sid, task=sid, kind="agent", agent="worker", model=None, fallbacks=(), prompt=f"do {sid}",
            instruction="", depends_on=ds, context=ds, tools=(), output_schema=None, for_each=None,
            temperature=0.0, max_tokens=None, max_turns=1, retries=0, retry_delay=1.0, timeout=600.0,
            cache=True, is_result=True, group=0, reason="", hash=digest,
        )  # fmt: skip
    order = tuple(steps.values())
    return Plan(name=name, steps=order, edges=tuple((d, s.id) for s in order for d in s.depends_on),
                groups=(), inputs={}, task_results={s.id: s.id for s in order})  # fmt: skip


def wide() -> Plan:
    deps: dict[str, tuple[str, ...]] = {"root": ()}
    deps |= {f"w{i}": ("root",) for i in range(98)}
    deps["sink"] = tuple(f"w{i}" for i in range(98))
    return build("wide", deps)


def layered() -> Plan:
    deps: dict[str, tuple[str, ...]] = {}
    for layer in range(10):
        for i in range(10):
            ups = () if layer == 0 else (f"l{layer - 1}n{i}", f"l{layer - 1}n{(i + 3) % 10}")
            deps[f"l{layer}n{i}"] = ups
    return build("layered", deps)


def chain() -> Plan:
    return build("chain", {f"c{i}": ((f"c{i - 1}",) if i else ()) for i in range(100)})


# -- the ideal --------------------------------------------------------------------------------
def ideal_makespan(plan: Plan, cap: int | None, latency: float) -> float:
    """List schedule with `cap` workers, longest remaining path first, every step `latency`."""
    children: dict[str, list[str]] = {s.id: [] for s in plan.steps}
    for s in plan.steps:
        for d in s.depends_on:
            children[d].append(s.id)
    length: dict[str, int] = {}
    for s in reversed(plan.steps):
        length[s.id] = 1 + max((length[c] for c in children[s.id]), default=0)
    waiting = {s.id: len(s.depends_on) for s in plan.steps}
    ready = [(-length[s.id], s.id) for s in plan.steps if not s.depends_on]
    heapq.heapify(ready)
    running: list[tuple[float, str]] = []
    now = 0.0
    workers = cap or len(plan.steps)
    while ready or running:
        while ready and len(running) < workers:
            _, sid = heapq.heappop(ready)
            heapq.heappush(running, (now + latency, sid))
        now, sid = heapq.heappop(running)
        for c in children[sid]:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, (-length[c], c))
    return now


# -- the mocked LLM ---------------------------------------------------------------------------
class Fake:
    """Fixed latency, deterministic answers; notes when the first answer came back."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.first: float | None = None
        self.lock = threading.Lock()

    def execute(self, call: StepCall) -> StepResult:
        if self.latency:
            time.sleep(self.latency)
        with self.lock:
            if self.first is None:
                self.first = time.perf_counter()
        return StepResult(
            output=f"{call.step.id} ok", model="fake", prompt_tokens=1, completion_tokens=1
        )


async def plain_asyncio(plan: Plan, latency: float, cap: int | None, first: list[float]) -> None:
    """The floor: dependency-driven asyncio, a semaphore, nothing else."""
    limit = asyncio.Semaphore(cap or len(plan.steps))
    done = {s.id: asyncio.Event() for s in plan.steps}

    async def one(step: Step) -> None:
        for d in step.depends_on:
            await done[d].wait()
        async with limit:
            await asyncio.sleep(latency)
        if not first:
            first.append(time.perf_counter())
        done[step.id].set()

    await asyncio.gather(*(one(s) for s in plan.steps))


def raw_prefect(plan: Plan, latency: float, cap: int | None, first: list[float]) -> None:
    """Prefect used directly: a sync flow, one task per step, `.submit(wait_for=...)` on the
    thread-pool task runner (how a plain Prefect port of the plan would look)."""
    from prefect import flow, task
    from prefect.cache_policies import NONE
    from prefect.task_runners import ThreadPoolTaskRunner

    @task(cache_policy=NONE, persist_result=False)
    def work(step_id: str) -> str:
        time.sleep(latency)
        if not first:
            first.append(time.perf_counter())
        return step_id

    @flow(
        name=f"raw-{plan.name}",
        task_runner=ThreadPoolTaskRunner(max_workers=cap or len(plan.steps)),
    )
    def run() -> None:
        futures: dict[str, Any] = {}
        for s in plan.steps:
            wait = [futures[d] for d in s.depends_on]
            futures[s.id] = work.with_options(name=s.id).submit(s.id, wait_for=wait)
        for future in futures.values():
            future.wait()

    run()


# -- measuring --------------------------------------------------------------------------------
def children_cpu() -> float:
    """CPU seconds of this process's live children (the embedded Prefect server), from /proc."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def settle(limit: float = 10.0) -> None:
    """Wait until the embedded server has ingested the previous run's events (its CPU goes
    quiet), so that each run is measured alone, as a single `codexflow apply` would run."""
    if os.environ.get("PREFECT_API_URL"):  # a server we did not start: its CPU is not ours to see
        time.sleep(3.0)
        return
    deadline = time.monotonic() + limit
    last = children_cpu()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = children_cpu()
        if now - last < 0.01:
            return
        last = now


def measure(
    engine: str, plan: Plan, latency: float, cap: int | None, state: Path
) -> dict[str, float]:
    if engine in ("prefect", "raw"):
        settle()
    cpu0, srv0, t0 = time.process_time(), children_cpu(), time.perf_counter()
    inner = 0.0
    if engine in ("asyncio", "raw"):
        first: list[float] = []
        if engine == "asyncio":
            asyncio.run(plain_asyncio(plan, latency, cap, first))
        else:
            raw_prefect(plan, latency, cap, first)
        first_at = first[0]
    else:
        fake = Fake(latency)
        options = RunOptions(state_dir=state, max_concurrency=cap, fresh=True, engine=engine,  # type: ignore[arg-type]
                             handle_signals=False)  # fmt: skip
        result = run_plan(plan, fake, options)
        assert result.ok, result.status
        first_at = fake.first or t0
        inner = result.duration
    wall = time.perf_counter() - t0
    steps = len(plan.steps)
    return {
        "makespan": wall,
        "inner": inner or wall,
        "cpu_ms": (time.process_time() - cpu0) / steps * 1000,
        "srv_ms": (children_cpu() - srv0) / steps * 1000,
        "first_ms": (first_at - t0) * 1000,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latencies", type=float, nargs="+", default=[0.0, 0.1])
    parser.add_argument("--slow", action="store_true", help="add the 1 s latency (a few minutes)")
    parser.add_argument("--engines", nargs="+", default=["asyncio", "local", "prefect"])
    parser.add_argument("--shapes", nargs="+", default=["wide", "layered", "chain"])
    args = parser.parse_args(argv)
    latencies = [*args.latencies, *([1.0] if args.slow else [])]
    shapes: dict[str, Callable[[], Plan]] = {"wide": wide, "layered": layered, "chain": chain}
    state = Path(tempfile.mkdtemp(prefix="codexflow-bench-"))
    if "prefect" in args.engines:
        os.environ.setdefault("PREFECT_HOME", str(state / "prefect"))
        started = time.perf_counter()
        run_plan(
            build("warmup", {"x": ()}),
            Fake(0.0),
            RunOptions(state_dir=state, engine="prefect", handle_signals=False),
        )
        print(
            f"prefect embedded server start + first flow: {time.perf_counter() - started:.1f} s (not counted below)"
        )
    header = f"{'shape':8} {'lat':>5} {'C':>4} {'engine':8} {'makespan':>9} {'ideal':>7} {'ratio':>6} {'cpu/step':>9} {'srv/step':>9} {'first':>8} {'sched':>7}"
    print(header)
    print("-" * len(header))
    for shape in args.shapes:
        plan = shapes[shape]()
        for latency in latencies:
            for cap in (8, None):
                ideal = ideal_makespan(plan, cap, latency)
                for engine in args.engines:
                    m = measure(engine, plan, latency, cap, state)
                    ratio = f"{m['makespan'] / ideal:.2f}" if ideal else "-"
                    row: list[Any] = [shape, f"{latency:g}", cap or "∞", engine]
                    print(f"{row[0]:8} {row[1]:>5} {row[2]!s:>4} {row[3]:8} {m['makespan']:8.2f}s {ideal:6.2f}s {ratio:>6} "
                          f"{m['cpu_ms']:7.2f}ms {m['srv_ms']:7.2f}ms {m['first_ms']:6.0f}ms {m['inner']:6.2f}s", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
