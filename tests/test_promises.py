"""Promises of the README that one changed line would break unseen: each test here guards one."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codexflow.compiler import compile_spec
from codexflow.runtime.units import expand, prepare
from codexflow.spec import load_spec_text

ROOT = Path(__file__).resolve().parents[1]

FAN_OUT = """apiVersion: codexflow/v1
name: fan
agents:
  worker: {role: coder}
tasks:
  each:
    agent: worker
    for_each: [x, y, z]
    prompt: Do the next part of the job.
"""


def test_each_fan_out_item_has_its_own_cache_key_even_when_the_prompt_omits_it() -> None:
    """The cache key covers the item: otherwise a re-run serves the first item's answer to all."""
    plan = compile_spec(load_spec_text(FAN_OUT, "fan.yaml")[0])
    (step,) = plan.steps
    units = expand(plan, step, {}, {})
    prepared = [prepare(plan, unit, {}, {}, run_id="r1") for unit in units]
    assert [call.prompt for call, _ in prepared] == ["Do the next part of the job."] * 3
    assert [call.item for call, _ in prepared] == ["x", "y", "z"]
    keys = [key for _, key in prepared]
    assert len(set(keys)) == 3
    # Stable across runs (never the run id): the same item in another run finds its answer.
    again = [prepare(plan, unit, {}, {}, run_id="r2")[1] for unit in units]
    assert again == keys


INNER = """import pytest

@pytest.mark.requires_protection
def test_guarded():
    pytest.skip("bubblewrap cannot create namespaces here")

def test_ordinary():
    pytest.skip("nothing promised")

@pytest.mark.requires_protection
@pytest.mark.xfail(reason="known")
def test_expected_failure():
    raise AssertionError
"""


@pytest.mark.parametrize("ci", ["true", ""])
def test_a_skipped_protection_fails_on_ci_and_only_there(tmp_path: Path, ci: str) -> None:
    (tmp_path / "test_inner.py").write_text(INNER, encoding="utf-8")
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(ROOT)}
    pytest_argv = ["-m", "pytest", "-p", "tests.conftest", "-q", "-rA", "-p", "no:cacheprovider"]
    marker = ["-o", "markers=requires_protection: test"]
    done = subprocess.run(
        [sys.executable, *pytest_argv, *marker, str(tmp_path / "test_inner.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = done.stdout
    if ci:
        assert done.returncode == 1, out
        assert "FAILED test_inner.py::test_guarded" in out
        assert "guards a protection the README promises" in out
        assert "bubblewrap cannot create namespaces here" in out
    else:
        assert done.returncode == 0, out
        assert "2 skipped" in out and "bubblewrap cannot create namespaces here" in out
    assert "1 xfailed" in out  # an expected failure stays one, CI or not
    assert "SKIPPED [1] test_inner.py:8: nothing promised" in out  # unmarked skips stay skips


def test_every_mutation_of_the_mutation_check_still_applies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """bench/mutations.py breaks promises by exact text: when the code moves, its mutations must
    move with it (update them there), or the check would report them stale, not killed."""
    found = importlib.util.spec_from_file_location("mutations", ROOT / "bench" / "mutations.py")
    assert found is not None and found.loader is not None
    mutations = importlib.util.module_from_spec(found)
    monkeypatch.setitem(sys.modules, "mutations", mutations)  # dataclasses look it up there
    found.loader.exec_module(mutations)
    assert len(mutations.MUTATIONS) >= 5
    for mutation in mutations.MUTATIONS:
        text = (ROOT / mutation.file).read_text(encoding="utf-8")
        assert text.count(mutation.old) == 1, f"{mutation.name}: update it for {mutation.file}"
        assert mutation.new != mutation.old
        for selection in mutation.tests:
            assert (ROOT / selection.split("::")[0]).exists(), f"{mutation.name}: {selection}"
