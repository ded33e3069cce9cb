"""Break each promise of the README on purpose, in a copy of the repository, and see a test fail.

    python bench/mutations.py                  # every mutation (or: make mutations)
    python bench/mutations.py --list           # what they are
    python bench/mutations.py --only tools-out-of-step-hash --only api-key-env-not-redacted

A mutation is a file, an exact piece of its text, what to put instead, and the tests that guard
the promise. Each one is applied to a fresh temporary copy of the working tree (never in place),
and its tests run there with PYTHONPATH pointing at the copy. First the same tests run on an
unmutated copy: a selection that fails without any mutation proves nothing, so that is an error.

    killed    the tests failed: the promise is guarded
    survived  the tests passed with the promise broken: a test is missing
    stale     the old text is not in the file exactly once: the code moved, update the mutation
    error     the baseline failed, pytest could not run, or the copy imported another codexflow

The exit code is 0 only when every mutation selected was killed.

A fast test (tests/test_promises.py) fails when a mutation no longer applies to the tree.

The runtime mutations (`fan-out-item-out-of-cache-key`, `replicas-ignored`) are written against
codexflow/runtime as it was before the runtime rewrite: after it, the lead may need to update
their file, old text and tests (a `stale` result says so).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Not copied: version control, caches, virtualenvs and run state are no part of the code.
IGNORED = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".codexflow",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    "*.egg-info",
    "build",
    "dist",
)
TIMEOUT = 900  # seconds for one pytest run; a mutation that hangs its tests counts as killed


@dataclass(frozen=True)
class Mutation:
    name: str
    promise: str  # what the README promises, that this change breaks
    file: str
    old: str
    new: str
    tests: tuple[str, ...]  # pytest arguments: files, node ids


MUTATIONS = (
    Mutation(
        "fan-out-item-out-of-cache-key",
        "each fan-out item is cached under its own key (README: Runs that never pay twice)",
        "codexflow/runtime/units.py",
        "return call, cache_key(step.hash, prompt, context, unit.item)",
        "return call, cache_key(step.hash, prompt, context, None)",
        ("tests/test_promises.py",),
    ),
    Mutation(
        "replicas-ignored",
        "`replicas` caps how many steps of one agent run at once (README: Providers)",
        "codexflow/runtime/scheduler.py",
        "if step.agent is not None and step.agent in self.options.agent_limits:",
        "if False:",
        ("tests/runtime/test_runtime_scheduler.py",),
    ),
    Mutation(
        "sandbox-limits-dropped",
        "shell tools run with CPU, memory and file-size limits (README: Tools, confined)",
        "codexflow/tools/sandbox.py",
        '        f"--cpu={limits.cpu_seconds}",\n'
        '        f"--as={limits.address_space}",\n'
        '        f"--fsize={limits.file_size}",\n',
        "",
        ("tests/tools/test_tools_sandbox.py", "tests/tools/test_tools_kernel.py"),
    ),
    Mutation(
        "api-key-env-not-redacted",
        "the key named by `api_key_env` never reaches a cassette or a record, whatever its name",
        "codexflow/providers/provider.py",
        "own = os.environ.get(route.api_key_env) if route.api_key_env else None",
        "own = None",
        ("tests/test_record_replay_cli.py", "tests/providers/test_record_replay.py"),
    ),
    Mutation(
        "redaction-off",
        "cassettes are readable YAML with secrets removed (README: Against a real model)",
        "codexflow/providers/cassette.py",
        '    """A copy of `value` with secret-named keys dropped and every secret value replaced."""\n',
        '    """A copy of `value` with secret-named keys dropped and every secret value replaced."""\n'
        "    return value\n",
        ("tests/test_record_replay_cli.py",),
    ),
    Mutation(
        "tools-out-of-step-hash",
        "a step's content hash covers its tools and their schemas (README: Topologies)",
        "codexflow/compiler/compile.py",
        '        "tools": tools,\n',
        "",
        ("tests/compiler/test_content_hash_property.py",),
    ),
    Mutation(
        "web-hosts-out-of-step-hash",
        "web_fetch's hash covers the hosts its `kind: web` tools allow (its schema lists them)",
        "codexflow/compiler/compile.py",
        "    if name == WEB_FETCH:\n",
        "    if False:\n",
        ("tests/compiler/test_content_hash_property.py",),
    ),
    Mutation(
        "protection-skips-pass-on-ci",
        "on CI a skipped test of a promised protection fails instead of passing unseen",
        "tests/conftest.py",
        'if report.skipped and not hasattr(report, "wasxfail") and protected and on_ci():',
        "if False:",
        ("tests/test_promises.py",),
    ),
    Mutation(
        "embedded-server-outlives-apply",
        "the embedded Prefect server ends with the apply that started it, `kill -9` included",
        "codexflow/runtime/prefect_env.py",
        'if command[1:3] != ["-m", "uvicorn"]:',
        "if True:",
        ("tests/test_durable_steps.py",),
    ),
    Mutation(
        "prefect-retries-never-called",
        "a unit is retried by Prefect (`retries`, visible as run_count) for errors that may heal",
        "codexflow/runtime/prefect_tasks.py",
        "self._retry_condition = may_heal",
        "self._retry_condition = self._may_heal  # type: ignore[assignment]",
        ("tests/runtime/test_runtime_prefect.py",),
    ),
    Mutation(
        "postgres-insert-race-unhandled",
        "two writers creating one memory key at once lose no update on PostgreSQL",
        "codexflow/memory/store.py",
        "                if attempt == _INSERT_RACES - 1:\n",
        "                if True:\n",
        ("tests/memory/test_memory_postgres.py",),
    ),
)


@dataclass
class Outcome:
    verdict: str  # killed | survived | stale | error
    detail: str


def copy_tree(into: Path) -> Path:
    """A copy of the working tree (uncommitted changes included) under `into`."""
    target = into / "repo"
    shutil.copytree(ROOT, target, ignore=IGNORED, symlinks=True)
    return target


def environment(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy)  # the copy's codexflow wins over any installed one
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def imports_the_copy(copy: Path, python: str) -> bool:
    done = subprocess.run(
        [python, "-c", "import codexflow; print(codexflow.__file__)"],
        cwd=copy,
        env=environment(copy),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode == 0 and Path(done.stdout.strip()).is_relative_to(copy)


def run_tests(copy: Path, tests: tuple[str, ...], python: str) -> tuple[int | None, str]:
    """pytest's exit code (None on timeout) and the tail of its output."""
    argv = [python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        done = subprocess.run(
            argv,
            cwd=copy,
            env=environment(copy),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return None, f"timed out after {TIMEOUT} s"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode, lines[-1] if lines else ""


def apply_mutation(copy: Path, mutation: Mutation) -> str | None:
    """Change the copy; None when done, else why the mutation does not apply."""
    path = copy / mutation.file
    if not path.is_file():
        return f"{mutation.file} does not exist"
    text = path.read_text(encoding="utf-8")
    found = text.count(mutation.old)
    if found != 1:
        return f"the old text occurs {found} times in {mutation.file} (expected once)"
    path.write_text(text.replace(mutation.old, mutation.new), encoding="utf-8")
    return None


def baseline(tests: tuple[str, ...], python: str, scratch: Path) -> Outcome | None:
    """None when the selection passes unmutated; else the error that makes a kill meaningless."""
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        copy = copy_tree(Path(tmp))
        if not imports_the_copy(copy, python):
            return Outcome("error", "the copy does not import its own codexflow")
        code, tail = run_tests(copy, tests, python)
    if code != 0:
        return Outcome("error", f"the tests fail without the mutation: {tail}")
    return None


def check(mutation: Mutation, python: str, scratch: Path, keep: bool) -> Outcome:
    tmp = Path(tempfile.mkdtemp(prefix=f"mutation-{mutation.name}-", dir=scratch))
    try:
        copy = copy_tree(tmp)
        problem = apply_mutation(copy, mutation)
        if problem is not None:
            return Outcome("stale", problem)
        if not imports_the_copy(copy, python):
            return Outcome("error", "the mutated copy does not import its own codexflow")
        code, tail = run_tests(copy, mutation.tests, python)
    finally:
        if keep:
            print(f"  (kept {tmp})", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if code is None:
        return Outcome("killed", tail)
    if code == 1:
        return Outcome("killed", tail)
    if code == 0:
        return Outcome("survived", tail)
    return Outcome("error", f"pytest exit code {code}: {tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--only", action="append", default=[], metavar="NAME")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated runs")
    parser.add_argument("--keep", action="store_true", help="keep the mutated copies")
    parser.add_argument("--python", default=sys.executable, help="interpreter with pytest")
    args = parser.parse_args(argv)

    if args.list:
        for m in MUTATIONS:
            print(f"{m.name}\n  promise: {m.promise}\n  {m.file}; tests: {' '.join(m.tests)}")
        return 0
    names = {m.name for m in MUTATIONS}
    unknown = [name for name in args.only if name not in names]
    if unknown:
        print(f"unknown mutation(s): {', '.join(unknown)}; --list shows them", file=sys.stderr)
        return 2
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]

    results: list[tuple[Mutation, Outcome]] = []
    with tempfile.TemporaryDirectory(prefix="codexflow-mutations-") as scratch_dir:
        scratch = Path(scratch_dir)
        baselines: dict[tuple[str, ...], Outcome | None] = {}
        for mutation in chosen:
            if not args.no_baseline and mutation.tests not in baselines:
                baselines[mutation.tests] = baseline(mutation.tests, args.python, scratch)
            failed_baseline = baselines.get(mutation.tests)
            outcome = failed_baseline or check(mutation, args.python, scratch, args.keep)
            results.append((mutation, outcome))
            print(f"{outcome.verdict:8}  {mutation.name}: {outcome.detail}", flush=True)

    killed = sum(outcome.verdict == "killed" for _, outcome in results)
    print(f"\n{killed} of {len(results)} mutations killed")
    for mutation, outcome in results:
        if outcome.verdict != "killed":
            print(f"  {outcome.verdict}: {mutation.name} — {mutation.promise}")
    return 0 if killed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
