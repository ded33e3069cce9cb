"""Never pay twice: the JSON result store, re-runs, spec edits, --fresh and `cache_status`."""

from __future__ import annotations

from pathlib import Path

from runtime_support import FakeExecutor, S, make_plan, six_step_plan

from codexflow.agents.step_io import StepResult
from codexflow.runtime import ResultStore, RunOptions, cache_key, cache_status, run_plan


def local(tmp_path: Path, **kw: object) -> RunOptions:
    return RunOptions(state_dir=tmp_path / "state", engine="local", **kw)  # type: ignore[arg-type]


def test_rerun_after_success_makes_no_call(tmp_path: Path) -> None:
    first = run_plan(six_step_plan(), FakeExecutor(), local(tmp_path))
    executor = FakeExecutor()
    second = run_plan(six_step_plan(), executor, local(tmp_path))
    assert executor.calls == []
    assert second.ok and second.executed == 0
    assert all(r.status == "cached" and r.cached for r in second.records.values())
    assert second.outputs == first.outputs


def test_spec_edit_reruns_the_step_and_its_descendants_only(tmp_path: Path) -> None:
    run_plan(six_step_plan(), FakeExecutor(), local(tmp_path))
    executor = FakeExecutor()
    result = run_plan(six_step_plan(edited="a"), executor, local(tmp_path))
    assert result.ok
    assert executor.calls == ["a", "join", "final"]


def test_changed_input_reruns_what_renders_it(tmp_path: Path) -> None:
    run_plan(six_step_plan(), FakeExecutor(), local(tmp_path))
    plan = six_step_plan()
    changed = type(plan)(
        **{**{f: getattr(plan, f) for f in plan.__slots__}, "inputs": {"target": "lib/"}}
    )
    executor = FakeExecutor()
    run_plan(changed, executor, local(tmp_path))
    # plan's prompt renders the input; everything downstream sees plan's new output.
    assert len(executor.calls) == 8


def test_fresh_ignores_the_cache(tmp_path: Path) -> None:
    run_plan(six_step_plan(), FakeExecutor(), local(tmp_path))
    executor = FakeExecutor()
    assert run_plan(six_step_plan(), executor, local(tmp_path, fresh=True)).ok
    assert len(executor.calls) == 8


def test_failed_run_resumes_with_only_the_unfinished(tmp_path: Path) -> None:
    executor = FakeExecutor(fail={"join": 1})
    assert run_plan(six_step_plan(), executor, local(tmp_path)).status == "failed"
    executor = FakeExecutor()
    assert run_plan(six_step_plan(), executor, local(tmp_path)).ok
    assert executor.calls == ["join", "final"]


def test_cache_status_before_and_after(tmp_path: Path) -> None:
    plan = six_step_plan()
    assert not any(cache_status(plan, tmp_path / "state").values())
    run_plan(plan, FakeExecutor(), local(tmp_path))
    assert all(cache_status(plan, tmp_path / "state").values())
    status = cache_status(six_step_plan(edited="a"), tmp_path / "state")
    assert status == {
        "plan": True,
        "work[*]": True,
        "a": False,
        "b": True,
        "join": False,
        "final": False,
    }


def test_store_roundtrip_is_atomic_and_tolerates_garbage(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    key = cache_key("h", "prompt", {"x": [1, 2]}, None)
    assert (
        key
        == cache_key("h", "prompt", {"x": [1, 2]}, None)
        != cache_key("h", "prompt", {"x": [1, 3]}, None)
    )
    assert store.get(key) is None
    store.put(
        key,
        "unit",
        StepResult(output={"a": 1}, model="m", prompt_tokens=1, completion_tokens=2, cost_usd=0.5),
    )
    got = store.get(key)
    assert (
        got is not None
        and got.output == {"a": 1}
        and got.cost_usd == 0.5
        and got.completion_tokens == 2
    )
    files = list((tmp_path / "results").rglob("*"))
    assert not [f for f in files if f.name.endswith(".tmp")]
    path = next(f for f in files if f.is_file())
    path.write_text("{half a fi", encoding="utf-8")  # a torn file from elsewhere: treated as absent
    assert store.get(key) is None


def test_a_step_without_cache_always_runs(tmp_path: Path) -> None:
    plan = make_plan("nocache", [S("x")])
    step = plan.steps[0]
    plan = type(plan)(
        **{
            **{f: getattr(plan, f) for f in plan.__slots__},
            "steps": (
                type(step)(**{**{f: getattr(step, f) for f in step.__slots__}, "cache": False}),
            ),
        }
    )
    run_plan(plan, FakeExecutor(), local(tmp_path))
    executor = FakeExecutor()
    run_plan(plan, executor, local(tmp_path))
    assert executor.calls == ["x"]
