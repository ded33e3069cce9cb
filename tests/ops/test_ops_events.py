"""codexflow events as Prefect events: in the server's event feed with the run and the step, and
the README's automation (notify when a budget is reached) created through Prefect's API fires."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import typing
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from ops_support import ROOT, PrefectServer, events

from codexflow.events import EventName

pytestmark = pytest.mark.slow

NAMES = list(typing.get_args(EventName))

# Emits one event of every name on a bus with the Prefect listener subscribed, then flushes.
EMIT = """
import sys
from codexflow.events import Event, EventBus
from codexflow.runtime.prefect_events import flush_prefect_events, subscribe_prefect_events

run_id, names = sys.argv[1], sys.argv[2].split(",")
bus = EventBus()
stop = subscribe_prefect_events(bus, spec="opsevents")
for name in names:
    payload = {"prompt_tokens": 120, "completion_tokens": 30, "cost_usd": 0.25}
    if name == "codexflow.budget.reached":
        payload = {"limit_kind": "usd", "limit": 1.0, "spent_usd": 1.02, "tokens": 5000,
                   "message": "the run reached its budget of $1.00"}
    if name == "codexflow.tool.called":
        payload = {"tool": "read_file", "result": "x" * 10000}
    bus.emit(Event(name, run_id, step_id="coder: refactor[2]", agent="coder", payload=payload))
stop()
flush_prefect_events()
"""


def emit(server: PrefectServer, tmp_path: Path, run_id: str, names: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", EMIT, run_id, ",".join(names)],
        env=server.env(tmp_path / "home"), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_codexflow_event_reaches_prefects_event_feed(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    run_id = "20261201-120000.000-abcdef"
    emit(prefect_server, tmp_path, run_id, NAMES)
    mine = {"resource": {"id": [f"codexflow.run.{run_id}"]}}
    found = prefect_server.wait_for(
        "the events in the feed",
        lambda: (got := events(prefect_server, mine)) and len(got) >= len(NAMES) and got,
    )
    assert sorted(e["event"] for e in found) == sorted(NAMES)
    for event in found:
        assert event["resource"]["prefect.resource.name"] == run_id
        assert event["resource"]["codexflow.spec"] == "opsevents"
        roles = {r["prefect.resource.role"]: r for r in event["related"]}
        assert roles["step"]["prefect.resource.id"] == f"codexflow.step.{run_id}.coder: refactor[2]"
        assert roles["agent"]["prefect.resource.name"] == "coder"
        assert event["payload"]["run_id"] == run_id
    by_name = {e["event"]: e for e in found}
    finished = by_name["codexflow.step.finished"]["payload"]
    assert (finished["tokens"], finished["cost_usd"]) == (150, 0.25)
    budget = by_name["codexflow.budget.reached"]["payload"]
    assert (budget["tokens"], budget["cost_usd"], budget["limit_kind"]) == (5000, 1.02, "usd")
    tool = by_name["codexflow.tool.called"]["payload"]
    assert len(tool["result"]) < 2100  # long payload values are abridged


def readme_automation() -> dict[str, Any]:
    """The automation the README shows, as JSON (the first ```json block after its marker)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("<!-- automation: budget reached -->") :]
    block = re.search(r"```json\n(.*?)```", section, re.S)
    assert block is not None
    return dict(json.loads(block.group(1)))


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]], threading.Event]]:
    """An HTTP endpoint on 127.0.0.1 that records the JSON bodies posted to it."""
    received: list[dict[str, Any]] = []
    arrived = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            received.append(json.loads(self.rfile.read(length) or b"{}"))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            arrived.set()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/notify", received, arrived
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


BLOCK = """
import sys
from prefect.blocks.notifications import CustomWebhookNotificationBlock

block = CustomWebhookNotificationBlock(
    name="codexflow-budget", url=sys.argv[1],
    json_data={"subject": "{{subject}}", "body": "{{body}}"},
)
print(block.save("codexflow-budget", overwrite=True))
"""


def test_the_readme_automation_notifies_when_a_budget_is_reached(
    prefect_server: PrefectServer,
    tmp_path: Path,
    webhook: tuple[str, list[dict[str, Any]], threading.Event],
) -> None:
    url, received, arrived = webhook
    saved = subprocess.run(
        [sys.executable, "-c", BLOCK, url], env=prefect_server.env(tmp_path / "home"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    block_id = saved.stdout.strip().splitlines()[-1]
    automation = readme_automation()
    automation["actions"][0]["block_document_id"] = block_id
    created = prefect_server.post("/automations/", automation)
    assert created["trigger"]["expect"] == ["codexflow.budget.reached"]
    run_id = "20261201-130000.000-b0d6e7"
    # A finished step must not notify; the budget event must, once.
    emit(prefect_server, tmp_path, run_id, ["codexflow.step.finished", "codexflow.budget.reached"])
    assert arrived.wait(90), prefect_server.log.read_text()[-3000:]
    assert len(received) == 1
    note = received[0]
    assert "opsevents reached its budget" in note["subject"]
    assert f"Run {run_id}" in note["body"] and "5000 tokens" in note["body"]


def test_a_real_apply_puts_its_whole_story_in_prefects_feed(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    """From `run.started` (the run's session, opened inside the flow run) to `run.finished`."""
    command = [
        sys.executable, "-m", "codexflow", "apply", str(ROOT / "specs" / "notebook.yaml"),
        "--model", "scripted/demo", "--script", str(ROOT / "specs" / "scripted" / "notebook.yaml"),
        "--state-dir", str(tmp_path / "state"),
    ]  # fmt: skip
    done = subprocess.run(
        command, env=prefect_server.env(tmp_path / "home"), capture_output=True, text=True,
        timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = Path(done.stdout.split("run record: ", 1)[1].split()[0]).name
    mine = {"resource": {"id": [f"codexflow.run.{run_id}"]}}
    wanted = {"codexflow.run.started", "codexflow.step.finished", "codexflow.run.finished"}
    found = prefect_server.wait_for(
        "the run's events in the feed",
        lambda: (
            (got := events(prefect_server, mine)) and wanted <= {e["event"] for e in got} and got
        ),
    )
    names = [e["event"] for e in found]
    assert names[0] == "codexflow.run.started" and names[-1] == "codexflow.run.finished"
