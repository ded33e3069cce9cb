"""Run history for `codexflow runs`: from Prefect's API when one is configured, else the run records.

From Prefect, a codexflow run is a flow run of the `apply-spec` flow (deployments, `codexflow
apply`, UI retries) or one that carries a codexflow report artifact (`codexflow-<spec>`). Its
state and times come from the flow run, its steps from its task runs, what it spent from the
report artifact (a table artifact's rows when there is one, else the Markdown report's table).
Locally, `<state-dir>/runs/<run-id>/summary.json` and `steps/*.json` say the same.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from codexflow.errors import CodexflowError

FLOW_NAME = "apply-spec"
ARTIFACT_PREFIX = "codexflow-"
SPEC_TAG = "spec:"
MAX_SCAN = 1000  # flow runs read from the API at most for one listing (filters are client-side)
PAGE = 200  # the most the API returns per request

# Prefect state types as codexflow's run statuses (`--status` takes either word).
STATUS_OF_STATE = {
    "COMPLETED": "succeeded",
    "FAILED": "failed",
    "CRASHED": "failed",
    "CANCELLED": "interrupted",
    "CANCELLING": "interrupted",
    "RUNNING": "running",
    "PAUSED": "paused",
    "SCHEDULED": "scheduled",
    "PENDING": "scheduled",
}


class RunNotFound(CodexflowError):
    """No run, or more than one, matches what was asked for."""


# -- local run records -------------------------------------------------------------------------


def local_runs(
    state_dir: Path, spec: str | None = None, status: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Runs recorded under `state_dir/runs`, newest first, in the shape `prefect_runs` returns."""
    found = []
    for path in sorted((Path(state_dir) / "runs").glob("*/summary.json"), reverse=True):
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a run killed while writing its summary: its steps are still on disk
        run = _local_row(summary)
        if _matches(run, spec, status):
            found.append(run)
            if limit is not None and len(found) >= limit:
                break
    return found


def local_run(state_dir: Path, run_id: str) -> dict[str, Any]:
    """One recorded run (a unique prefix of its id is enough), with its steps and their outputs."""
    runs_dir = Path(state_dir) / "runs"
    matches = sorted(p.parent for p in runs_dir.glob(f"{_glob_safe(run_id)}*/summary.json"))
    if len(matches) != 1:
        found = "no run" if not matches else f"{len(matches)} runs"
        raise RunNotFound(f"{found} matching `{run_id}` under {runs_dir}")
    summary = json.loads((matches[0] / "summary.json").read_text(encoding="utf-8"))
    run = _local_row(summary)
    run["steps"] = []
    for step in summary.get("steps", []):
        tokens = step.get("prompt_tokens", 0) + step.get("completion_tokens", 0)
        row = {**step, "tokens": tokens, "output": None}
        record = matches[0] / "steps" / _file_name(step["id"])
        if record.is_file():
            row["output"] = json.loads(record.read_text(encoding="utf-8")).get("output")
        run["steps"].append(row)
    report = matches[0] / "report.md"
    run["report"] = report.read_text(encoding="utf-8") if report.is_file() else ""
    return run


def _local_row(summary: dict[str, Any]) -> dict[str, Any]:
    totals = summary.get("totals", {})
    return {
        "run_id": summary.get("run_id", ""),
        "spec": summary.get("plan", ""),
        "status": summary.get("status", ""),
        "state": summary.get("status", ""),
        "start": _start_of(summary.get("run_id", "")),
        "duration": summary.get("duration", 0.0),
        "steps_total": totals.get("steps", 0),
        "executed": totals.get("executed", 0),
        "cached": totals.get("cached", 0),
        "tokens": totals.get("spent_tokens", 0),
        "cost_usd": totals.get("spent_usd", 0.0),
        "flow_run_id": summary.get("prefect_flow_run_id"),
        "ui_url": summary.get("ui_url"),
        "source": "local",
    }


def _start_of(run_id: str) -> str | None:
    """Run ids start with their UTC start time: `20261124-004613.042-3f9a1c`."""
    try:
        stamp = datetime.strptime(run_id[:19], "%Y%m%d-%H%M%S.%f").replace(tzinfo=UTC)
    except ValueError:
        return None
    return stamp.isoformat()


def _file_name(unit_id: str) -> str:
    from codexflow.runtime.record import file_name

    return file_name(unit_id)


def _glob_safe(text: str) -> str:
    return re.sub(r"[\[\]*?]", "?", text)


def _matches(run: dict[str, Any], spec: str | None, status: str | None) -> bool:
    if spec is not None and run["spec"] != spec:
        return False
    if status is None:
        return True
    wanted = status.lower()
    return wanted in (str(run["status"]).lower(), str(run["state"]).lower())


# -- Prefect's API -----------------------------------------------------------------------------


def prefect_runs(
    spec: str | None = None, status: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """codexflow's flow runs on the configured Prefect server, newest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
    )
    from prefect.client.schemas.sorting import ArtifactSort, FlowRunSort

    with get_client(sync_client=True) as client:
        by_id: dict[str, Any] = {}
        for run in _paged(  # runs of the one flow
            client.read_flow_runs,
            flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        ):
            by_id[str(run.id)] = run
        # Runs that published a report under another flow's name (codexflow's earlier mirror).
        artifacts = _paged(
            client.read_artifacts,
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_=f"{ARTIFACT_PREFIX}%")),
            sort=ArtifactSort.CREATED_DESC,
        )
        others = {str(a.flow_run_id) for a in artifacts if a.flow_run_id} - set(by_id)
        if others:
            ids = FlowRunFilterId(any_=[UUID(i) for i in sorted(others)])
            for run in _paged(client.read_flow_runs, flow_run_filter=FlowRunFilter(id=ids)):
                by_id[str(run.id)] = run
        reports = _reports(client, list(by_id))
        flows = {str(f.id): f.name for f in _paged(client.read_flows)}
    rows = [_prefect_row(run, reports.get(key), flows) for key, run in by_id.items()]
    rows.sort(key=lambda row: row["start"] or row["expected_start"] or "", reverse=True)
    return [row for row in rows if _matches(row, spec, status)][:limit]


def prefect_run(run: str) -> dict[str, Any]:
    """One flow run (its id, a unique id prefix, or its name), with its task runs and report."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    candidates = [r for r in prefect_runs(limit=MAX_SCAN) if _names(r, run)]
    if len(candidates) != 1:
        found = "no flow run" if not candidates else f"{len(candidates)} flow runs"
        raise RunNotFound(f"{found} matching `{run}` on the Prefect server")
    row = candidates[0]
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(UUID(row["flow_run_id"]))
        task_runs = _paged(
            client.read_task_runs,
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])),
        )
        report = _reports(client, [row["flow_run_id"]]).get(row["flow_run_id"])
    ids = {str(t.id): t.name for t in task_runs}
    per_step = {step["step"]: step for step in (report or {}).get("steps", [])}
    steps = []
    for task_run in sorted(task_runs, key=lambda t: str(t.start_time or t.expected_start_time)):
        spent = per_step.get(task_run.name) or per_step.get(_unit_of(task_run.name)) or {}
        upstream = sorted(
            ids.get(str(getattr(ref, "id", "")), str(getattr(ref, "id", "")))
            for refs in (task_run.task_inputs or {}).values()
            for ref in refs
            if getattr(ref, "input_type", "") == "task_run"
        )
        steps.append({
            "name": task_run.name,
            "id": _unit_of(task_run.name),
            "status": spent.get("status") or STATUS_OF_STATE.get(_state_type(task_run), ""),
            "state": task_run.state.name if task_run.state else "",
            "start": _iso(task_run.start_time),
            "duration": task_run.total_run_time.total_seconds() if task_run.total_run_time else 0.0,
            "attempts": task_run.run_count,
            "depends_on": upstream,
            "tokens": spent.get("tokens", 0),
            "cost_usd": spent.get("cost_usd", 0.0),
            "cached": spent.get("cached", False),
            "model": spent.get("model", ""),
            "message": task_run.state.message if task_run.state else "",
            "output": _output_of(task_run),
        })  # fmt: skip
    row["steps"] = steps
    row["parameters"] = flow_run.parameters
    row["report"] = (report or {}).get("markdown", "")
    row["message"] = flow_run.state.message if flow_run.state else ""
    return row


def _paged(read: Any, **filters: Any) -> list[Any]:
    """Every item a `read_*` call of Prefect's client returns, page by page, up to MAX_SCAN."""
    found: list[Any] = []
    while len(found) < MAX_SCAN:
        page = read(limit=PAGE, offset=len(found), **filters)
        found.extend(page)
        if len(page) < PAGE:
            break
    return found


def _names(row: dict[str, Any], wanted: str) -> bool:
    return (
        str(row["flow_run_id"]).startswith(wanted)
        or row["run_id"] == wanted
        or (len(wanted) >= 8 and str(row["run_id"]).startswith(wanted))
    )


def _unit_of(task_run_name: str) -> str:
    """`coder: refactor[2]` -> `refactor[2]` (task runs are named `<agent>: <unit>`)."""
    return task_run_name.split(": ", 1)[1] if ": " in task_run_name else task_run_name


def _state_type(run: Any) -> str:
    return str(run.state.type.value) if run.state is not None else ""


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _prefect_row(run: Any, report: dict[str, Any] | None, flows: dict[str, str]) -> dict[str, Any]:
    state = _state_type(run)
    spec = next((t[len(SPEC_TAG) :] for t in run.tags or [] if t.startswith(SPEC_TAG)), None)
    if spec is None and report is not None:
        spec = report["key"][len(ARTIFACT_PREFIX) :]
    if spec is None:
        flow = flows.get(str(run.flow_id), "")
        spec = Path(str(run.parameters.get("spec", ""))).stem if flow == FLOW_NAME else flow
    duration = run.total_run_time.total_seconds() if run.total_run_time else 0.0
    if state == "RUNNING" and run.start_time is not None:
        duration = max(duration, time.time() - run.start_time.timestamp())
    totals = (report or {}).get("totals", {})
    from codexflow.runtime.prefect_env import ui_url

    return {
        "run_id": run.name,
        "spec": spec,
        "status": STATUS_OF_STATE.get(state, state.lower()),
        "state": run.state.name if run.state else "",
        "start": _iso(run.start_time),
        "expected_start": _iso(run.expected_start_time),
        "duration": round(duration, 3),
        "steps_total": len((report or {}).get("steps", [])),
        "executed": totals.get("executed", 0),
        "cached": totals.get("cached", 0),
        "tokens": totals.get("tokens", 0),
        "cost_usd": totals.get("cost_usd", 0.0),
        "flow_run_id": str(run.id),
        "deployment_id": str(run.deployment_id) if run.deployment_id else None,
        "ui_url": ui_url(str(run.id)),
        "source": "prefect",
    }


def _reports(client: Any, flow_run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each flow run's codexflow report, parsed: {flow run id: {key, markdown, steps, totals}}."""
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    if not flow_run_ids:
        return {}
    artifacts = _paged(
        client.read_artifacts,
        artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(i) for i in flow_run_ids]),
            key=ArtifactFilterKey(like_=f"{ARTIFACT_PREFIX}%"),
        ),
    )
    found: dict[str, dict[str, Any]] = {}
    for artifact in artifacts:
        key = str(artifact.flow_run_id)
        entry = found.setdefault(
            key, {"key": artifact.key, "markdown": "", "steps": [], "totals": {}}
        )
        if artifact.type == "markdown" and isinstance(artifact.data, str):
            entry["key"] = artifact.key
            entry["markdown"] = artifact.data
            if not entry["steps"]:
                entry["steps"] = parse_report_table(artifact.data)
            entry["totals"] = {**parse_report_totals(artifact.data), **entry["totals"]}
        elif artifact.type == "table":
            rows = parse_table_artifact(artifact.data)
            if rows:
                entry["steps"] = rows
                entry["totals"] = {
                    **entry["totals"],
                    "tokens": sum(r["tokens"] for r in rows if not r["cached"]),
                    "cost_usd": round(sum(r["cost_usd"] for r in rows if not r["cached"]), 6),
                }
    return found


_SPENT = re.compile(r"\*\*Spent:\*\*\s*(\d+)\s*tokens,\s*\$([0-9.]+)")
_EXECUTED = re.compile(r"\*\*Executed:\*\*\s*(\d+)\s*\*\*Cached:\*\*\s*(\d+)")


def parse_report_totals(markdown: str) -> dict[str, Any]:
    """What the run spent and reused, from the report's header lines (runtime/record.py)."""
    totals: dict[str, Any] = {}
    if spent := _SPENT.search(markdown):
        totals["tokens"], totals["cost_usd"] = int(spent.group(1)), float(spent.group(2))
    if counts := _EXECUTED.search(markdown):
        totals["executed"], totals["cached"] = int(counts.group(1)), int(counts.group(2))
    return totals


def parse_report_table(markdown: str) -> list[dict[str, Any]]:
    """The report's step table (`| step | agent | status | ... |`) as rows."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    if len(lines) < 2:
        return []
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if len(cells) != len(header):
            continue
        rows.append(_step_row(dict(zip(header, cells, strict=True))))
    return rows


def parse_table_artifact(data: Any) -> list[dict[str, Any]]:
    """A Prefect table artifact's rows (a list of dicts, or a JSON string of one)."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            return []
    if isinstance(data, dict):  # {column: [values]}
        columns = list(data)
        data = [
            dict(zip(columns, values, strict=False)) for values in zip(*data.values(), strict=False)
        ]
    if not isinstance(data, list):
        return []
    return [_step_row(row) for row in data if isinstance(row, dict)]


def _step_row(row: dict[str, Any]) -> dict[str, Any]:
    def number(*names: str) -> float:
        for name in names:
            value = row.get(name)
            if value not in (None, ""):
                try:
                    return float(str(value).lstrip("$"))
                except ValueError:
                    continue
        return 0.0

    cached = row.get("cached", "")
    return {
        "step": str(row.get("step") or row.get("id") or row.get("unit") or ""),
        "agent": str(row.get("agent") or ""),
        "status": str(row.get("status") or ""),
        "tokens": int(number("tokens", "total_tokens")),
        "cost_usd": number("cost ($)", "cost_usd", "cost"),
        "cached": cached is True or str(cached).lower() in ("yes", "true"),
        "model": str(row.get("model") or ""),
        "attempts": int(number("attempts")),
    }


def _output_of(task_run: Any) -> Any:
    """The task run's persisted result when this process can read its result storage."""
    state = task_run.state
    if state is None or not state.is_completed():
        return None
    try:
        value = state.result(raise_on_failure=False)
    except Exception:  # not persisted, or stored where this machine cannot read
        return None
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value
