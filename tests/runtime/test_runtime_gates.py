"""Approval gates (headless, --approve, interactive) and budget pauses (raise or stop)."""

from __future__ import annotations

from pathlib import Path

from runtime_support import FakeExecutor, S, make_plan

from codexflow.compiler.plan import Step
from codexflow.errors import BudgetExceeded
from codexflow.runtime import RunOptions, run_plan


def gated_plan() -> object:
    return make_plan(
        "gated",
        [
            S("write"),
            S("review.approval", ("write",), kind="approval", task="review"),
            S("review", ("review.approval",)),
            S("publish", ("review",)),
            S("docs", ("write",)),
        ],
    )


def local(tmp_path: Path, **kw: object) -> RunOptions:
    return RunOptions(state_dir=tmp_path / "state", engine="local", **kw)  # type: ignore[arg-type]


def test_headless_run_denies_and_skips_the_gated_branch(tmp_path: Path) -> None:
    executor = FakeExecutor()
    result = run_plan(gated_plan(), executor, local(tmp_path))  # type: ignore[arg-type]
    assert result.status == "denied" and result.exit_code == 1
    statuses = {k: r.status for k, r in result.records.items()}
    assert statuses == {"write": "succeeded", "review.approval": "denied", "review": "skipped",
                        "publish": "skipped", "docs": "succeeded"}  # fmt: skip
    assert sorted(executor.calls) == ["docs", "write"]


def test_approve_option_opens_the_gate(tmp_path: Path) -> None:
    executor = FakeExecutor()
    result = run_plan(gated_plan(), executor, local(tmp_path, approve=frozenset({"review"})))  # type: ignore[arg-type]
    assert result.ok and "publish" in executor.calls
    assert result.records["review.approval"].status == "succeeded"


def test_interactive_approval_asks_once_per_gate(tmp_path: Path) -> None:
    asked: list[str] = []

    def ask(step: Step) -> bool:
        asked.append(step.task)
        return True

    result = run_plan(gated_plan(), FakeExecutor(), local(tmp_path, ask_approval=ask))  # type: ignore[arg-type]
    assert result.ok and asked == ["review"]


def test_interactive_denial(tmp_path: Path) -> None:
    result = run_plan(
        gated_plan(), FakeExecutor(), local(tmp_path, ask_approval=lambda step: False)
    )  # type: ignore[arg-type]
    assert result.status == "denied" and result.records["publish"].status == "skipped"


def test_gates_are_asked_again_but_cached_work_is_not_paid_again(tmp_path: Path) -> None:
    run_plan(gated_plan(), FakeExecutor(), local(tmp_path, approve=frozenset({"review"})))  # type: ignore[arg-type]
    executor = FakeExecutor()
    result = run_plan(gated_plan(), executor, local(tmp_path, approve=frozenset({"review"})))  # type: ignore[arg-type]
    assert result.ok and executor.calls == []


def budget_plan() -> object:
    return make_plan("budget", [S("a"), S("b", ("a",)), S("c", ("b",)), S("side")])


def test_budget_raised_then_the_run_goes_on(tmp_path: Path) -> None:
    asked: list[str] = []
    limits: list[tuple[str, float]] = []

    def on_budget(exc: BudgetExceeded) -> float | None:
        asked.append(exc.message)
        return 10.0

    executor = FakeExecutor(raise_on={"b": BudgetExceeded("over $5", limit_kind="tokens")})
    options = local(
        tmp_path,
        on_budget=on_budget,
        raise_budget=lambda kind, limit: limits.append((kind, limit)),
        max_concurrency=1,
    )
    result = run_plan(budget_plan(), executor, options)  # type: ignore[arg-type]
    assert result.ok
    assert asked == ["over $5"] and limits == [("tokens", 10.0)]
    assert executor.calls.count("b") == 2 and executor.calls.count("c") == 1


def test_budget_declined_stops_cleanly_and_resumes_later(tmp_path: Path) -> None:
    executor = FakeExecutor(raise_on={"b": BudgetExceeded("over $5")})
    result = run_plan(budget_plan(), executor, local(tmp_path, on_budget=lambda exc: None))  # type: ignore[arg-type]
    assert result.status == "budget_reached" and "budget" in result.reason
    statuses = {k: r.status for k, r in result.records.items()}
    assert (
        statuses["a"] == "succeeded" and statuses["b"] == "not_run" and statuses["c"] == "not_run"
    )
    assert (result.run_dir / "summary.json").exists()
    executor = FakeExecutor()
    assert run_plan(budget_plan(), executor, local(tmp_path)).ok  # type: ignore[arg-type]
    assert sorted(executor.calls) == ["b", "c"]


def test_budget_without_a_callback_stops(tmp_path: Path) -> None:
    executor = FakeExecutor(raise_on={"a": BudgetExceeded("over")})
    result = run_plan(budget_plan(), executor, local(tmp_path))  # type: ignore[arg-type]
    assert result.status == "budget_reached" and result.records["a"].status == "not_run"
