"""The Prefect UI, in Debian's headless Chromium driven by Playwright: an applied spec's flow run
shows its steps, its graph and the report artifact. Screenshots land in the test's tmp dir."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ops_support import PrefectServer, run_cli

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium's connections are refused by this closed
# network at every start; no sandbox: the tests run as root.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
SPEC = """\
apiVersion: codexflow/v1
name: uidemo
workspace: .
agents:
  writer: {model: scripted/demo, role: writer, goal: Write., replicas: 2}
tasks:
  outline: {agent: writer, prompt: Outline it.}
  draft: {agent: writer, prompt: Draft it., depends_on: [outline]}
  polish: {agent: writer, prompt: Polish it., depends_on: [outline, draft]}
"""
SCRIPT = """\
replies:
  - content: done
    delay: 0.05
    usage: {prompt_tokens: 10, completion_tokens: 2}
    repeat: true
"""
EDGES = {("writer: outline", "writer: draft"), ("writer: outline", "writer: polish"),
         ("writer: draft", "writer: polish")}  # fmt: skip


def browser_available() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return shutil.which(CHROMIUM) is not None


@dataclass
class Visit:
    flow_run_id: str
    shots: Path
    texts: dict[str, str] = field(default_factory=dict)  # tab -> the page's visible text
    graph: dict[str, Any] = field(default_factory=dict)  # what the UI fetched to draw the graph
    canvas: bool = False


@pytest.fixture(scope="module")
def visit(
    prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Visit]:
    """Apply a spec against the server, then read its flow run in the UI, tab by tab."""
    if not browser_available():
        message = f"needs playwright and Debian's chromium at {CHROMIUM} (.ci/run installs both)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    work = tmp_path_factory.mktemp("ui")
    (work / "spec.yaml").write_text(SPEC)
    (work / "script.yaml").write_text(SCRIPT)
    env = prefect_server.env(work / "home")
    done = run_cli(["apply", "spec.yaml", "--script", "script.yaml", "--state-dir", "state"],
                   env, work)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("Prefect flow run: "))
    flow_run_id = line.split()[3]
    # The server records task runs from events, soon after the run: wait for all three.
    prefect_server.wait_for(
        "the task runs", lambda: len(prefect_server.task_runs(flow_run_id)) == 3
    )
    result = Visit(flow_run_id, work)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            with page.expect_response(lambda r: "/graph-v2" in r.url, timeout=90_000) as graph:
                page.goto(f"{prefect_server.ui}/runs/flow-run/{flow_run_id}", timeout=90_000)
            result.graph = graph.value.json()
            page.wait_for_selector("canvas", timeout=60_000)
            result.canvas = page.locator("canvas").count() > 0
            page.wait_for_timeout(1500)  # the graph animates in; a screenshot after it settles
            page.screenshot(path=str(work / "flow-run.png"), full_page=True)
            result.texts["run"] = page.inner_text("body")
            page.get_by_text("Task Runs", exact=True).first.click()
            page.get_by_text("writer: polish").first.wait_for(timeout=60_000)
            page.screenshot(path=str(work / "task-runs.png"), full_page=True)
            result.texts["task runs"] = page.inner_text("body")
            page.get_by_text("Artifacts", exact=True).first.click()
            # The report, not the steps table artifact (`codexflow-uidemo-steps`) beside it.
            report = page.get_by_text("codexflow-uidemo", exact=True).first
            report.wait_for(timeout=60_000)
            report.click()
            page.get_by_text("Reused from the cache").first.wait_for(timeout=60_000)
            page.screenshot(path=str(work / "artifact.png"), full_page=True)
            result.texts["artifact"] = page.inner_text("body")
        finally:
            browser.close()
    yield result


def test_the_ui_shows_the_flow_run_and_its_steps(visit: Visit) -> None:
    assert "Completed" in visit.texts["run"]
    assert "3 Task runs" in visit.texts["run"]
    for name in ("writer: outline", "writer: draft", "writer: polish"):
        assert name in visit.texts["task runs"]
    assert visit.canvas  # the run graph is drawn
    labels = sorted(node["label"] for _id, node in visit.graph["nodes"])
    assert labels == ["writer: draft", "writer: outline", "writer: polish"]
    for shot in ("flow-run.png", "task-runs.png", "artifact.png"):
        assert (visit.shots / shot).stat().st_size > 10_000  # a real picture, not a blank page


def test_the_ui_shows_the_report_artifact(visit: Visit) -> None:
    text = visit.texts["artifact"]
    assert "uidemo — run" in text
    assert "Status:" in text and "succeeded" in text
    for step in ("outline", "draft", "polish"):
        assert step in text


def test_the_ui_graph_draws_the_plans_dependency_arrows(visit: Visit) -> None:
    labels = {node_id: node["label"] for node_id, node in visit.graph["nodes"]}
    arrows = {
        (labels[parent["id"]], node["label"])
        for _id, node in visit.graph["nodes"]
        for parent in node["parents"]
    }
    assert arrows == EDGES
