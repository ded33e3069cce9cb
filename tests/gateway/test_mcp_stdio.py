"""`codexflow mcp` driven over stdio by the MCP SDK's own client, as a coding agent would."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.gateway.conftest import SPECS

ROOT = Path(__file__).resolve().parents[2]
TOOLS = {
    "validate",
    "plan",
    "apply",
    "run_status",
    "run_cancel",
    "approve",
    "runs",
    "memory_get",
    "memory_search",
}


def server_params(tmp_path: Path, *extra: str) -> StdioServerParameters:
    spec_dir = tmp_path / "specs"
    if not spec_dir.exists():
        shutil.copytree(SPECS, spec_dir)
    args = ["-m", "codexflow", "mcp", "--spec-dir", str(spec_dir)]
    args += ["--state-dir", str(tmp_path / "state"), "--no-prefect", *extra]
    env = {"PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True", "DO_NOT_TRACK": "1"}
    return StdioServerParameters(command=sys.executable, args=args, env=env, cwd=str(tmp_path))


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def poll_to_end(client: Client, run_id: str, limit: int = 50) -> dict[str, Any]:
    """run_status until the run is final; each call waits for progress, so the loop is short."""
    for _ in range(limit):
        status = await call(client, "run_status", run_id=run_id, wait_seconds=30)
        if status["final"]:
            return status
    raise AssertionError(f"run {run_id} did not end in {limit} polls")


async def until_asked(client: Client, run_id: str, limit: int = 50) -> dict[str, Any]:
    for _ in range(limit):
        status = await call(client, "run_status", run_id=run_id, wait_seconds=30)
        if status["pending_approvals"]:
            return status
        assert not status["final"], status
    raise AssertionError(f"run {run_id} asked nothing in {limit} polls")


def test_a_coding_agent_session_over_stdio(tmp_path: Path) -> None:
    async def session() -> None:
        async with Client(server_params(tmp_path)) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            assert tools == TOOLS

            broken = await call(client, "validate", spec="broken")
            assert broken["valid"] is False
            [issue] = broken["issues"]
            assert (issue["line"], issue["col"]) == (8, 12)
            assert issue["text"].endswith(
                "broken.yaml:8:12: tasks.draft.agent: agent `wirter` is not an agent "
                "(did you mean 'writer'?)"
            )
            text = (SPECS / "broken.yaml").read_text().replace("wirter", "writer")
            assert (await call(client, "validate", text=text))["valid"] is True

            plan = await call(client, "plan", spec="hello", inputs={"topic": "mcp"})
            assert [step["id"] for step in plan["steps"]] == ["draft", "polish"]
            assert plan["inputs"] == {"topic": "mcp"}

            # apply returns at once; run_status follows it to the end, with progress.
            started = await call(client, "apply", spec="hello", inputs={"topic": "mcp"})
            assert started["state"] in ("queued", "running") and not started["final"]
            progress: list[tuple[float, float | None, str | None]] = []

            async def on_progress(done: float, total: float | None, message: str | None) -> None:
                progress.append((done, total, message))

            first = await client.call_tool(
                "run_status",
                {"run_id": started["run_id"], "wait_seconds": 30},
                progress_callback=on_progress,
            )
            assert progress and all(total == 2 for _, total, _ in progress)
            done = first.structured_content
            assert done is not None
            if not done["final"]:
                done = await poll_to_end(client, started["run_id"])
            assert done["state"] == "succeeded"
            assert done["steps_done"] == done["steps_total"] == 2
            assert done["outputs"] == {
                "draft": "calculators add numbers",
                "polish": "Calculators add numbers, fast.",
            }
            assert done["spent"]["tokens"] == 61

            # A gate: the run waits until the client approves it.
            gated = await call(client, "apply", spec="gated")
            waiting = await until_asked(client, gated["run_id"])
            [question] = waiting["pending_approvals"]
            assert (question["gate"], question["kind"]) == ("publish", "gate")
            answer = await call(client, "approve", run_id=gated["run_id"], gate="publish")
            assert answer["approved"] is True
            approved = await poll_to_end(client, gated["run_id"])
            assert approved["state"] == "succeeded"
            assert approved["outputs"]["publish"] == "published"

            # A second gated run, cancelled while it waits.
            second = await call(client, "apply", spec="gated", inputs={"topic": "cancel me"})
            await until_asked(client, second["run_id"])
            await call(client, "run_cancel", run_id=second["run_id"])
            cancelled = await poll_to_end(client, second["run_id"])
            assert cancelled["state"] == "cancelled"
            assert "publish" not in cancelled["outputs"]

            listed = await call(client, "runs")
            states = {run["run_id"]: run["state"] for run in listed["runs"]}
            assert states == {
                started["run_id"]: "succeeded",
                gated["run_id"]: "succeeded",
                second["run_id"]: "cancelled",
            }

            # Resources: the specs and the run reports.
            uris = {str(r.uri) for r in (await client.list_resources()).resources}
            assert {"codexflow://specs/hello", "codexflow://specs/gated"} <= uris
            spec = await client.read_resource("codexflow://specs/hello")
            assert "name: hello" in spec.contents[0].text  # type: ignore[union-attr]
            report = await client.read_resource(f"codexflow://runs/{started['run_id']}/report")
            assert "**Status:** succeeded" in report.contents[0].text  # type: ignore[union-attr]

            # What the client cannot do: widen the sandbox, or reach outside the spec dir.
            refused = await client.call_tool("apply", {"spec": "hello", "workspace": "/"})
            assert refused.is_error and "without --workspace" in str(refused.content)
            outside = await client.call_tool("validate", {"spec": "../../etc/passwd"})
            assert outside.is_error and "not a spec name" in str(outside.content)
            unknown = await client.call_tool("apply", {"spec": "helo"})
            assert unknown.is_error and "did you mean `hello`" in str(unknown.content)
            bad = await client.call_tool("apply", {"spec": "broken"})
            assert bad.is_error and "broken.yaml:8:12" in str(bad.content)

    asyncio.run(session())


@pytest.mark.parametrize("option", ["--allow-budget-raise"])
def test_the_server_starts_with_its_options(tmp_path: Path, option: str) -> None:
    """The operator's options parse; a missing spec dir is a usage error (exit 2)."""
    import subprocess

    params = server_params(tmp_path, option)
    missing = subprocess.run(
        [sys.executable, "-m", "codexflow", "mcp", "--spec-dir", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        env={**os.environ, **(params.env or {})},
        timeout=60,
    )
    assert missing.returncode == 2 and "is not a directory" in missing.stderr

    async def session() -> None:
        async with Client(params) as client:
            assert (await call(client, "runs"))["runs"] == []

    asyncio.run(session())


def test_streamable_http_on_loopback(tmp_path: Path) -> None:
    """`codexflow mcp --http PORT`: the same tools at http://127.0.0.1:PORT/mcp."""
    import socket
    import subprocess
    import threading

    with socket.socket() as probe:  # a free port (released for the server to take)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    params = server_params(tmp_path, "--http", str(port))
    process = subprocess.Popen(
        [params.command, *params.args],
        env={**os.environ, **(params.env or {})},
        cwd=str(tmp_path),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    drain: threading.Thread | None = None
    try:
        assert process.stderr is not None
        for line in process.stderr:  # until uvicorn says it listens (or the process ends)
            if "Uvicorn running on" in line:
                break
        assert process.poll() is None, "the server exited"
        # Keep reading what it logs, so a full pipe never blocks it.
        rest: list[str] = []
        drain = threading.Thread(target=lambda: rest.extend(process.stderr or []), daemon=True)
        drain.start()

        async def session() -> None:
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                tools = {tool.name for tool in (await client.list_tools()).tools}
                assert tools == TOOLS
                started = await call(client, "apply", spec="hello")
                done = await poll_to_end(client, started["run_id"])
                assert done["state"] == "succeeded"

        asyncio.run(session())
    finally:
        process.terminate()
        process.wait(timeout=60)
        if drain is not None:
            drain.join(timeout=30)  # the pipe ends with the process
        if process.stderr is not None:
            process.stderr.close()


def test_a_coding_agent_reads_a_specs_shared_memory(tmp_path: Path) -> None:
    """What a spec's agents stored in its lasting memory, read and searched over MCP."""
    from codexflow.memory import Memory, config_from_spec
    from codexflow.spec import load_spec

    spec_dir = tmp_path / "specs"
    shutil.copytree(SPECS, spec_dir)
    spec = spec_dir / "hello.yaml"
    # Where runs of `hello` under this server keep their memory (its state subdirectory).
    config = config_from_spec(
        load_spec(spec), tmp_path / "state" / "specs" / "hello", base=spec_dir
    )
    memory = Memory(config)
    memory.put("release", "Tag a release only after the changelog lists every change.")
    memory.put("style", "Prefer small functions with names that explain themselves.")
    memory.close()

    async def session() -> None:
        async with Client(server_params(tmp_path)) as client:
            found = await call(client, "memory_get", spec="hello", key="release")
            assert found["found"] is True and found["value"].startswith("Tag a release")
            missing = await call(client, "memory_get", spec="hello", key="nothing")
            assert missing["found"] is False and missing["value"] is None
            hits = await call(client, "memory_search", spec="hello", query="changelog", limit=1)
            assert [hit["key"] for hit in hits["hits"]] == ["release"]

    asyncio.run(session())
