"""Compile generated specs of 1,000 and 10,000 tasks and print the time of each phase.

    python bench/compile_bench.py [--sizes 1000 10000]

Each task depends on up to three earlier tasks (a layered DAG), a tenth of the tasks are
`agent: auto` (spread over five skills), and every tenth task reads an upstream output in its prompt.

Measured here (2 cores): 1,000 tasks 0.02 s, 10,000 tasks 0.4 s, plus 0.5 s of imports once.
The assignment solver is roughly cubic in the size of one group of competing tasks: 1,000
auto tasks all needing the same skill from the same 4 agents take ~1.5 s on their own.
"""

from __future__ import annotations

import argparse
import random
import time

from codexflow.compiler import compile_spec
from codexflow.spec.models import Spec


def generated_spec(tasks: int, seed: int = 7) -> dict:
    rng = random.Random(seed)
    agents = {
        f"agent{i}": {"role": "coder", "capabilities": ["python", f"skill{i % 5}"]}
        for i in range(20)
    }
    body: dict[str, dict] = {}
    for index in range(tasks):
        name = f"t{index}"
        deps = sorted({f"t{rng.randrange(index)}" for _ in range(min(index, 3))}) if index else []
        task: dict = {
            "agent": f"agent{index % 20}",
            "prompt": f"Do step {index}.",
            "depends_on": deps,
        }
        if index % 10 == 5:
            task = {**task, "agent": "auto", "requires": [f"skill{(index // 10) % 5}"]}
        if deps and index % 10 == 0:
            task["prompt"] = f"Continue from {{{{ tasks.{deps[0]}.output }}}}."
        body[name] = task
    return {"apiVersion": "codexflow/v1", "name": "bench", "agents": agents, "tasks": body}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000])
    args = parser.parse_args()
    started = time.perf_counter()
    import networkx  # noqa: F401  (imported lazily by the compiler; timed apart)
    import scipy.optimize  # noqa: F401

    print(
        f"imports (networkx, scipy.optimize), once per process: {time.perf_counter() - started:.3f}s"
    )
    print(f"{'tasks':>7} {'validate':>9} {'compile':>9} {'steps':>7} {'edges':>7}")
    for size in args.sizes:
        data = generated_spec(size)
        started = time.perf_counter()
        spec = Spec.model_validate(data)
        validated = time.perf_counter()
        plan = compile_spec(spec)
        compiled = time.perf_counter()
        print(
            f"{size:>7} {validated - started:>8.3f}s {compiled - validated:>8.3f}s "
            f"{len(plan.steps):>7} {len(plan.edges):>7}"
        )


if __name__ == "__main__":
    main()
