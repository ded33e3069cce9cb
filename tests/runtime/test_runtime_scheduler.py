"""Scheduling: dependencies only, the concurrency cap, critical-path priority, fan-out, failures."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from runtime_support import FakeExecutor, S, make_plan, six_step_plan

from codexflow.errors import ProviderError
from codexflow.runtime import RunOptions, run_plan


def local(tmp_path: Path, **kw: object) -> RunOptions:
    return RunOptions(state_dir=tmp_path / "state", engine="local", **kw)  # type: ignore[arg-type]


def test_every_unit_runs_once_in_dependency_order(tmp_path: Path) -> None:
    executor = FakeExecutor()
    result = run_plan(six_step_plan(), executor, local(tmp_path))
    assert result.status == "succeeded" and result.exit_code == 0
    assert sorted(executor.calls) == sorted(
        ["plan", "work[0]", "work[1]", "work[2]", "a", "b", "join", "final"]
    )
    position = {unit: i for i, unit in enumerate(executor.calls)}
    for before, after in [
        ("plan", "work[0]"),
        ("work[2]", "a"),
        ("a", "join"),
        ("b", "join"),
        ("join", "final"),
    ]:
        assert position[before] < position[after]
    # A fan-out task's output is the list of its items' outputs, in item order.
    assert [o.split("|")[-1] for o in result.outputs["work"]] == ["x>", "y>", "z>"]
    assert "a sees 3" in result.outputs["a"]


def test_no_layer_barrier(tmp_path: Path) -> None:
    # slow and fast are both roots; after_fast must not wait for slow (no superstep barrier).
    plan = make_plan("nobarrier", [S("slow"), S("fast"), S("after_fast", ("fast",))])
    executor = FakeExecutor(delays={"slow": 0.5, "fast": 0.05, "after_fast": 0.05})
    started = time.perf_counter()
    result = run_plan(plan, executor, local(tmp_path))
    assert result.ok
    assert executor.calls.index("after_fast") == 2
    assert result.records["after_fast"].duration < 0.4
    assert time.perf_counter() - started < 0.9


def test_concurrency_cap_holds(tmp_path: Path) -> None:
    plan = make_plan(
        "wide",
        [
            S("root"),
            *(S(f"w{i}", ("root",)) for i in range(12)),
            S("sink", tuple(f"w{i}" for i in range(12))),
        ],
    )
    executor = FakeExecutor(latency=0.03)
    result = run_plan(plan, executor, local(tmp_path, max_concurrency=3))
    assert result.ok and executor.peak == 3


def test_unbounded_runs_all_ready_units_at_once(tmp_path: Path) -> None:
    plan = make_plan("wide", [S(f"w{i}") for i in range(10)])
    executor = FakeExecutor(latency=0.1)
    result = run_plan(plan, executor, local(tmp_path, max_concurrency=None))
    assert result.ok and executor.peak == 10


def test_critical_path_first_when_the_cap_binds(tmp_path: Path) -> None:
    # short1, short2 come first in plan order, but c1 heads the longest remaining path.
    plan = make_plan("cp", [S("short1"), S("short2"), S("c1"), S("c2", ("c1",)), S("c3", ("c2",))])
    executor = FakeExecutor()
    assert run_plan(plan, executor, local(tmp_path, max_concurrency=1)).ok
    assert executor.calls[0] == "c1"


def test_fan_out_from_upstream_output(tmp_path: Path) -> None:
    plan = make_plan(
        "fan",
        [
            S("plan"),
            S(
                "each[*]",
                ("plan",),
                prompt="do {{ item }}",
                for_each="{{ tasks.plan.output }}",
                task="each",
            ),
            S("sum", ("each[*]",), prompt="{{ tasks.each.output | join(';') }}"),
        ],
    )
    executor = FakeExecutor(
        answer=lambda call: ["p", "q", "r"] if call.step.id == "plan" else call.prompt
    )
    result = run_plan(plan, executor, local(tmp_path))
    assert result.ok
    assert result.outputs["each"] == ["do p", "do q", "do r"]
    assert result.outputs["sum"] == "do p;do q;do r"
    assert [r.name for r in result.records.values()][1:4] == [
        "worker: each[0]",
        "worker: each[1]",
        "worker: each[2]",
    ]


def test_empty_fan_out_gives_an_empty_list(tmp_path: Path) -> None:
    plan = make_plan(
        "empty",
        [
            S("each[*]", for_each=(), task="each"),
            S("after", ("each[*]",), prompt="{{ tasks.each.output }}"),
        ],
    )
    result = run_plan(plan, FakeExecutor(answer=lambda call: call.prompt), local(tmp_path))
    assert result.ok and result.outputs == {"each": [], "after": "[]"}
    assert result.records["each[*]"].status == "succeeded"


def test_bad_for_each_fails_the_step_only(tmp_path: Path) -> None:
    plan = make_plan(
        "bad",
        [
            S("plan"),
            S("each[*]", ("plan",), for_each="{{ tasks.plan.output }}", task="each"),
            S("other"),
        ],
    )
    result = run_plan(plan, FakeExecutor(answer=lambda call: 42), local(tmp_path))
    assert result.status == "failed"
    assert (
        result.records["each[*]"].status == "failed"
        and "for_each" in result.records["each[*]"].error
    )
    assert result.records["other"].status == "succeeded"


def test_failure_skips_descendants_and_other_branches_go_on(tmp_path: Path) -> None:
    plan = make_plan(
        "fail",
        [
            S("root"),
            S("bad", ("root",)),
            S("child", ("bad",)),
            S("grandchild", ("child",)),
            S("good", ("root",)),
        ],
    )
    executor = FakeExecutor(raise_on={"bad": ProviderError("provider down")})
    result = run_plan(plan, executor, local(tmp_path))
    assert result.status == "failed" and result.exit_code == 1
    statuses = {k: r.status for k, r in result.records.items()}
    assert statuses == {
        "root": "succeeded",
        "bad": "failed",
        "child": "skipped",
        "grandchild": "skipped",
        "good": "succeeded",
    }
    assert "provider down" in result.records["bad"].error
    assert "child" not in executor.calls
    # A codexflow error is final: the provider layer already retried.
    assert executor.calls.count("bad") == 1


def test_transient_errors_are_retried(tmp_path: Path) -> None:
    plan = make_plan("retry", [S("flaky", retries=2)])
    executor = FakeExecutor(fail={"flaky": 2})
    result = run_plan(plan, executor, local(tmp_path))
    assert result.ok and result.records["flaky"].attempts == 3


def test_retries_run_out(tmp_path: Path) -> None:
    plan = make_plan("retry", [S("flaky", retries=1)])
    result = run_plan(plan, FakeExecutor(fail={"flaky": 5}), local(tmp_path))
    assert result.status == "failed" and result.records["flaky"].attempts == 2
    assert "ConnectionError" in result.records["flaky"].error


def test_timeout_fails_the_step(tmp_path: Path) -> None:
    plan = make_plan("slow", [S("slow", timeout=0.1)])
    started = time.perf_counter()
    result = run_plan(plan, FakeExecutor(latency=2.0), local(tmp_path))
    assert result.status == "failed" and "timed out" in result.records["slow"].error
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("cap", [1, 4])
def test_observer_sees_every_start_and_end(tmp_path: Path, cap: int) -> None:
    events: list[tuple[str, str]] = []

    class Recorder:
        def on_step_start(self, step_id: str, name: str) -> None:
            events.append(("start", step_id))

        def on_step_end(self, step_id: str, status: str, record: object) -> None:
            events.append((status, step_id))

    result = run_plan(
        six_step_plan(), FakeExecutor(), local(tmp_path, max_concurrency=cap), Recorder()
    )
    assert result.ok
    assert sum(1 for kind, _ in events if kind == "start") == 8
    assert sum(1 for kind, _ in events if kind == "succeeded") == 8


def test_agent_replicas_and_provider_limits(tmp_path: Path) -> None:
    plan = make_plan(
        "limits",
        [
            *(S(f"c{i}", agent="coder") for i in range(6)),
            *(S(f"r{i}", agent="reviewer") for i in range(6)),
        ],
    )
    executor = FakeExecutor(latency=0.05)
    options = local(tmp_path, max_concurrency=8, agent_limits={"coder": 2})
    result = run_plan(plan, executor, options)
    assert result.ok
    # With coders capped at 2, reviewers fill the other slots: 2 + 6 at the start.
    assert executor.agent_peak == {"coder": 2, "reviewer": 6}
    assert executor.peak == 8
    executor = FakeExecutor(latency=0.05)
    result = run_plan(
        plan, executor, local(tmp_path / "p", fresh=True, provider_limits={"fake": 3})
    )
    assert result.ok and executor.peak == 3


def test_the_run_emits_its_step_events_on_the_bus(tmp_path: Path) -> None:
    from codexflow.events import Event, EventBus

    bus, seen = EventBus(), []

    def listen(event: Event) -> None:
        seen.append((event.name, event.step_id))

    bus.subscribe(listen)
    executor = FakeExecutor(raise_on={"join": ProviderError("down")})
    options = RunOptions(state_dir=tmp_path, engine="local", events=bus)
    result = run_plan(six_step_plan(), executor, options)
    assert result.status == "failed"
    names = [name for name, _ in seen]
    assert ("codexflow.step.failed", "join") in seen
    assert ("codexflow.step.skipped", "final") in seen
    assert names.count("codexflow.step.started") == 7  # every unit that ran (not the skipped)
    assert names.count("codexflow.step.finished") == 6


def test_fan_out_items_never_share_a_cached_answer(tmp_path: Path) -> None:
    """A fan-out whose prompt does not mention `{{ item }}` still caches one answer per item:
    the item is part of each unit's cache key, so a re-run serves each item its own answer."""
    plan = make_plan(
        "items", [S("each[*]", prompt="the same words", for_each=("x", "y", "z"), task="each")]
    )
    first = run_plan(plan, FakeExecutor(), local(tmp_path))
    executor = FakeExecutor()
    again = run_plan(plan, executor, local(tmp_path))
    assert executor.calls == []  # all three from the cache...
    assert again.outputs == first.outputs
    assert len(set(again.outputs["each"])) == 3  # ...each its own
