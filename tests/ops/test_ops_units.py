"""Fast checks of the operations modules without a server: event mapping, report parsing, the
server's environment, and deploy's input errors."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from codexflow.errors import SpecError
from codexflow.events import Event, EventName
from codexflow.runtime.history import parse_report_table, parse_report_totals, parse_table_artifact
from codexflow.runtime.prefect_events import to_prefect
from codexflow.runtime.record import report
from codexflow.runtime.server import server_environment
from codexflow.runtime.types import RunResult, StepRecord


def test_every_event_name_maps_to_a_prefect_event_with_run_step_and_spend() -> None:
    for name in typing.get_args(EventName):
        event = Event(name, "r1", step_id="refactor[2]", agent="coder",
                      payload={"prompt_tokens": 7, "completion_tokens": 3, "cost_usd": 0.5})  # fmt: skip
        kwargs = to_prefect(event, spec="refactor")
        assert kwargs["event"] == name
        assert kwargs["resource"] == {
            "prefect.resource.id": "codexflow.run.r1",
            "prefect.resource.name": "r1",
            "codexflow.run-id": "r1",
            "codexflow.spec": "refactor",
        }
        assert [r["prefect.resource.role"] for r in kwargs["related"]] == ["step", "agent"]
        assert kwargs["related"][0]["prefect.resource.id"] == "codexflow.step.r1.refactor[2]"
        assert (kwargs["payload"]["tokens"], kwargs["payload"]["cost_usd"]) == (10, 0.5)


def test_a_run_event_without_step_has_no_related_step_and_zero_spend() -> None:
    kwargs = to_prefect(Event("codexflow.run.started", "r2", payload={"plan": "x"}))
    assert kwargs["related"] == []
    assert (kwargs["payload"]["tokens"], kwargs["payload"]["cost_usd"]) == (0, 0.0)
    assert kwargs["payload"]["plan"] == "x"


def test_payloads_are_json_and_abridged() -> None:
    kwargs = to_prefect(Event("codexflow.tool.called", "r3", payload={
        "result": "y" * 50_000, "path": Path("/x"), "nested": {"deep": ["z" * 5000]}}))  # fmt: skip
    payload = kwargs["payload"]
    assert len(payload["result"]) < 2100 and payload["path"] == "/x"
    assert len(payload["nested"]["deep"][0]) < 2100


def record(step: str, tokens: int, cost: float, cached: bool = False) -> StepRecord:
    return StepRecord(id=step, step=step, task=step, kind="agent", agent="coder",
                      name=f"coder: {step}", status="cached" if cached else "succeeded",
                      prompt_tokens=tokens, cost_usd=cost, cached=cached, model="m|odel")  # fmt: skip


def test_the_report_artifact_parses_back_to_what_the_run_spent(tmp_path: Path) -> None:
    records = {r.id: r for r in [record("plan", 100, 0.25), record("refactor[0]", 40, 0.5, True)]}
    result = RunResult("refactor", "r1", "succeeded", records, {}, 1.5, tmp_path)
    markdown = report(result)
    assert parse_report_totals(markdown) == {"tokens": 100, "cost_usd": 0.25, "executed": 1,
                                             "cached": 1}  # fmt: skip
    rows = parse_report_table(markdown)
    assert [(r["step"], r["tokens"], r["cost_usd"], r["cached"]) for r in rows] == [
        ("plan", 100, 0.25, False),
        ("refactor[0]", 40, 0.5, True),
    ]


def test_table_artifacts_parse_as_rows_or_columns() -> None:
    rows = [{"step": "a", "tokens": 3, "cost_usd": 0.1, "cached": False, "attempts": 2}]
    assert parse_table_artifact(rows)[0]["attempts"] == 2
    assert parse_table_artifact('[{"id": "b", "tokens": "4"}]')[0]["tokens"] == 4
    columns = {"step": ["a", "b"], "tokens": [1, 2]}
    assert [r["step"] for r in parse_table_artifact(columns)] == ["a", "b"]
    assert parse_table_artifact("not json") == []


def test_the_server_child_knows_its_own_urls(tmp_path: Path) -> None:
    env = server_environment(tmp_path, "127.0.0.1", 4242)
    assert env["PREFECT_UI_API_URL"] == "http://127.0.0.1:4242/api"
    assert env["PREFECT_API_URL"] == "http://127.0.0.1:4242/api"
    assert env["PREFECT_UI_URL"] == "http://127.0.0.1:4242"
    assert "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED" not in env  # the feed is kept
    assert server_environment(tmp_path, "0.0.0.0", 80)["PREFECT_UI_API_URL"] == (
        "http://127.0.0.1:80/api"
    )


def test_deploy_checks_cron_and_time_zone_before_any_server(tmp_path: Path) -> None:
    from codexflow.runtime.deploy import DeployRequest, deploy_spec

    spec = tmp_path / "spec.yaml"
    spec.write_text("apiVersion: codexflow/v1\nname: s\nworkspace: .\nagents:\n  a: {role: coder}\n"
                    "tasks:\n  t: {agent: a, prompt: Hi.}\n")  # fmt: skip
    with pytest.raises(SpecError, match="has 4 fields"):
        deploy_spec(DeployRequest(spec, cron="* * * *"))
    with pytest.raises(SpecError, match="unknown time zone 'Mars/Base'"):
        deploy_spec(DeployRequest(spec, cron="0 1 * * *", timezone="Mars/Base"))
