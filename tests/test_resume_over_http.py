"""`codexflow apply` against a real OpenAI-protocol server on 127.0.0.1: crash-resume (SIGKILL),
cache keys and budgets, every figure taken from the server's request log.

Each test writes a spec whose tasks' prompts carry a token (`STEP-a` ...); the server answers
each request after a delay with an output derived from the prompt it received, so a step's
output also depends on its upstream outputs. `apply` runs as a subprocess in its own process
group (its Prefect server, when there is one, included), killed whole when a test ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.openai_server import OpenAIServer, Reply, running_openai_server

ROOT = Path(__file__).resolve().parents[1]
KEY_ENV = "CODEXFLOW_TEST_KEY"
DELAY = 0.3  # seconds the server takes per answer
STEPS = ("a", "b", "c", "d", "e", "f")
# a -> b -> c, a -> d, {c, d} -> e -> f: a chain and a small fan-in, on two agents.
DEPENDS = {"a": [], "b": ["a"], "c": ["b"], "d": ["a"], "e": ["c", "d"], "f": ["e"]}
AGENT = {"a": "alpha", "b": "alpha", "c": "alpha", "d": "beta", "e": "beta", "f": "beta"}
TOKEN = re.compile(r"\bSTEP-([a-z])\b")


# -- the server's side -------------------------------------------------------------------------
def user_text(body: dict[str, Any] | None) -> str:
    parts = []
    for message in (body or {}).get("messages", []):
        if message.get("role") == "user":
            content = message.get("content")
            parts.append(content if isinstance(content, str) else json.dumps(content))
    return "\n".join(parts)


def step_of(body: dict[str, Any] | None) -> str:
    match = TOKEN.search(user_text(body))
    assert match, f"no step token in {body}"
    return match.group(1)


def answering(prompt_tokens: int = 10, completion_tokens: int = 5) -> Callable[..., Reply]:
    """Reply `out-<step>-<digest of the prompt>` after DELAY, with the given usage."""

    def reply(body: dict[str, Any]) -> Reply:
        digest = hashlib.sha256(user_text(body).encode()).hexdigest()[:10]
        return Reply(
            content=f"out-{step_of(body)}-{digest}",
            delay=DELAY,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )

    return reply


def steps_requested(server: OpenAIServer, since: int = 0) -> list[str]:
    return [step_of(r.json) for r in server.chat_requests()[since:]]


# -- the spec ----------------------------------------------------------------------------------
def write_spec(
    path: Path,
    api_base: str,
    *,
    edits: dict[str, str] | None = None,
    budget: int | None = None,
    max_tokens: int | None = None,
) -> Path:
    """The six-step spec as JSON (a subset of YAML); `edits` appends text to tasks' prompts."""
    tasks = {}
    for step in STEPS:
        upstream = " ".join(f"[{d}: {{{{ tasks.{d}.output }}}}]" for d in DEPENDS[step])
        prompt = f"STEP-{step}: answer briefly. {upstream}".strip() + (edits or {}).get(step, "")
        tasks[step] = {"agent": AGENT[step], "depends_on": DEPENDS[step], "prompt": prompt}
    spec: dict[str, Any] = {
        "apiVersion": "codexflow/v1",
        "name": "resume-over-http",
        "defaults": {"model": "openai/test-model", "retries": 0, "retry_delay": 0},
        "providers": {"openai": {"api_base": api_base, "api_key_env": KEY_ENV}},
        "agents": {
            "alpha": {"role": "writer", "goal": "Answer in one line."},
            "beta": {"role": "editor", "goal": "Answer in one line."},
        },
        "tasks": tasks,
    }
    if budget is not None:
        spec["budget"] = {"max_tokens": budget}
    if max_tokens is not None:
        spec["defaults"]["max_tokens"] = max_tokens
    path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    return path


# -- running `codexflow apply` -----------------------------------------------------------------
@dataclass
class Applier:
    """Starts `python -m codexflow apply` runs; kills each one's process group at the end."""

    root: Path
    started: list[subprocess.Popen[bytes]]

    def start(self, spec: Path, state: Path, *, prefect: bool = False) -> subprocess.Popen[bytes]:
        workspace = self.root / "workspace"
        workspace.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env |= {KEY_ENV: "sk-test-resume", "COLUMNS": "200", "NO_COLOR": "1"}
        env["PREFECT_HOME"] = str(self.root / "prefect-home")  # embedded server, private DB
        command = [sys.executable, "-m", "codexflow", "apply", str(spec)]
        command += ["--state-dir", str(state), "--workspace", str(workspace)]
        if not prefect:
            command.append("--no-prefect")
        index = len(self.started)
        with (self.root / f"apply-{index}.out").open("wb") as out:
            proc = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: Prefect's server child too
            )
        self.started.append(proc)
        return proc

    def output(self, proc: subprocess.Popen[bytes]) -> str:
        index = self.started.index(proc)
        return (self.root / f"apply-{index}.out").read_text(errors="replace")

    def run(self, spec: Path, state: Path, *, prefect: bool = False) -> tuple[int, Path]:
        """Apply to the end; the exit code and the run's record directory."""
        before = runs(state)
        proc = self.start(spec, state, prefect=prefect)
        try:
            code = proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            pytest.fail(f"apply did not finish in 90 s:\n{self.output(proc)}")
        new = runs(state) - before
        assert len(new) == 1, (new, self.output(proc))
        return code, state / "runs" / new.pop()

    def kill_all(self) -> None:
        for proc in self.started:
            kill_group(proc)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the run and everything in its process group (an embedded Prefect server
    outlives a killed parent: its atexit clean-up never runs)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


@pytest.fixture
def applier(tmp_path: Path) -> Iterator[Applier]:
    applier = Applier(tmp_path, [])
    try:
        yield applier
    finally:
        applier.kill_all()


def runs(state: Path) -> set[str]:
    folder = state / "runs"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def stored_steps(state: Path) -> set[str]:
    """Steps whose result is in the result store (what a re-apply will not pay for): each
    record's output is `out-<step>-<digest>`."""
    from codexflow.runtime.store import ResultStore

    store, units = ResultStore(state), set()
    for path in (state / "results").glob("*"):
        result = store.get(path.name)
        if result is not None and isinstance(result.output, str):
            units.add(result.output.split("-")[1])
    return units


def outputs(run_dir: Path) -> dict[str, Any]:
    found = {}
    for path in (run_dir / "steps").glob("*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        found[data["id"]] = data["output"]
    return found


def summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))


def wait_for_requests(
    server: OpenAIServer, count: int, proc: subprocess.Popen[bytes], applier: Applier
) -> None:
    # Generous: with Prefect the first request waits for the embedded server (a bound on a
    # loaded machine, not a measure of anything).
    deadline = time.monotonic() + 300
    while len(server.chat_requests()) < count:
        assert proc.poll() is None, f"apply ended early:\n{applier.output(proc)}"
        assert time.monotonic() < deadline, f"{server.chat_requests()} after 300 s"
        time.sleep(0.01)
    # No sleep to let more requests arrive: a kill now finds this request in flight (its answer
    # comes DELAY later), and whatever else was requested or stored is read off the server's
    # log and the state dir after the kill (Kill), so any moment is accounted for exactly.


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    """The fake OpenAI server of one test, answering every step after DELAY."""
    with running_openai_server() as server:
        server.default = answering()
        yield server


# -- the uninterrupted reference ---------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    state: Path
    outputs: dict[str, Any]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reference]:
    """One uninterrupted apply of the spec, in its own state dir, against its own server."""
    root = tmp_path_factory.mktemp("reference")
    applier = Applier(root, [])
    try:
        with running_openai_server() as server:
            server.default = answering()
            spec = write_spec(root / "swarm.yaml", server.url)
            code, run_dir = applier.run(spec, root / "state")
            assert code == 0, applier.output(applier.started[-1])
            assert sorted(steps_requested(server)) == sorted(STEPS)
        yield Reference(root / "state", outputs(run_dir))
    finally:
        applier.kill_all()


# -- crash-resume ------------------------------------------------------------------------------
@dataclass
class Kill:
    requests_before: int  # the log's length when this run was killed
    stored: set[str]  # steps with a stored result when it was killed
    in_flight: set[str]  # requested in this run, answer never stored


def kill_after(
    server: OpenAIServer, applier: Applier, spec: Path, state: Path, new_requests: int, **kw: Any
) -> Kill:
    """Start an apply, SIGKILL it once the server has seen `new_requests` more requests."""
    before = len(server.chat_requests())
    proc = applier.start(spec, state, **kw)
    wait_for_requests(server, before + new_requests, proc, applier)
    kill_group(proc)
    assert proc.returncode == -signal.SIGKILL, applier.output(proc)
    seen = len(server.chat_requests())
    stored = stored_steps(state)
    in_flight = set(steps_requested(server, before)) - stored
    assert in_flight, "the kill must land while a request is in flight"
    return Kill(seen, stored, in_flight)


def assert_resumed_exactly(server: OpenAIServer, kills: list[Kill]) -> None:
    """Once stored, a step is never requested again; each step was requested once, plus once
    for every kill that cut its request short; nothing else was ever requested."""
    log = steps_requested(server)
    for kill in kills:
        assert not set(log[kill.requests_before :]) & kill.stored, (kill, log)
    expected = Counter(STEPS) + Counter(s for kill in kills for s in kill.in_flight)
    assert Counter(log) == expected, log
    # In particular every step stored by a killed run, and not cut short before, cost 1 request.
    cut = {s for kill in kills for s in kill.in_flight}
    for step in set().union(*(kill.stored for kill in kills)) - cut:
        assert Counter(log)[step] == 1, (step, log)


@pytest.mark.slow
def test_sigkill_at_three_points_then_resume(
    server: OpenAIServer, applier: Applier, reference: Reference, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path / "swarm.yaml", server.url)
    state = tmp_path / "state"
    kills = []
    # 1 new request: `a` in flight. 2 more: `b` (and `d` beside it). 3 more: into `c` or `e`.
    for new_requests in (1, 2, 3):
        kills.append(kill_after(server, applier, spec, state, new_requests))
    stored_counts = [len(kill.stored) for kill in kills]
    assert stored_counts == sorted(set(stored_counts)) and stored_counts[-1] < len(STEPS), kills
    assert not kills[0].stored  # the first kill: before any result existed

    code, run_dir = applier.run(spec, state)
    assert code == 0, applier.output(applier.started[-1])
    assert_resumed_exactly(server, kills)
    final = summary(run_dir)
    assert final["status"] == "succeeded"
    assert {row["id"] for row in final["steps"] if row["cached"]} == kills[-1].stored
    assert outputs(run_dir) == reference.outputs
    assert not list(state.rglob("*.tmp"))  # a killed writer left no half-written entry behind


def prefect_server_running(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the run's embedded Prefect API server (a child process serving Prefect's app
    factory, under uvicorn) exists."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != proc.pid:
                continue
            command = (entry / "cmdline").read_bytes()
        except (OSError, ProcessLookupError):
            continue
        if b"prefect.server.api.server:create_app" in command:
            return True
    return False


@pytest.mark.slow
def test_prefect_run_killed_then_resumed(
    server: OpenAIServer, applier: Applier, reference: Reference, tmp_path: Path
) -> None:
    """The same with Prefect recording: a SIGKILL while its server runs leaves nothing (lock,
    slot, half-written result) that makes the re-apply pay twice or wait."""
    spec = write_spec(tmp_path / "swarm.yaml", server.url)
    state = tmp_path / "state"
    proc = applier.start(spec, state, prefect=True)
    wait_for_requests(server, 2, proc, applier)
    deadline = time.monotonic() + 300
    while not prefect_server_running(proc):
        assert proc.poll() is None and time.monotonic() < deadline, applier.output(proc)
        time.sleep(0.01)
    seen = len(server.chat_requests())
    kill_group(proc)
    assert proc.returncode == -signal.SIGKILL
    stored = stored_steps(state)
    kill = Kill(seen, stored, set(steps_requested(server)) - stored)
    assert 0 < len(stored) < len(STEPS) and kill.in_flight, kill
    deadline = time.monotonic() + 10  # SIGKILL is delivered to the group's members in turn
    while prefect_server_running(proc):  # nothing of the killed run is left
        assert time.monotonic() < deadline, "the killed run's Prefect server is still running"
        time.sleep(0.01)

    code, run_dir = applier.run(spec, state, prefect=True)  # no stale lock holds it up
    assert code == 0, applier.output(applier.started[-1])
    assert_resumed_exactly(server, [kill])
    final = summary(run_dir)
    assert final["status"] == "succeeded" and final["prefect_flow_run_id"]  # Prefect recorded it
    assert outputs(run_dir) == reference.outputs


# -- cache keys --------------------------------------------------------------------------------
@pytest.mark.slow
def test_identical_reapply_is_free_and_an_edit_pays_for_its_descendants_only(
    server: OpenAIServer, applier: Applier, reference: Reference, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    shutil.copytree(reference.state, state)  # after a successful apply (the server URL differs:
    spec = write_spec(tmp_path / "swarm.yaml", server.url)  # it is not part of a key)

    code, run_dir = applier.run(spec, state)
    assert code == 0 and server.chat_requests() == []
    assert outputs(run_dir) == reference.outputs
    assert all(row["cached"] for row in summary(run_dir)["steps"])

    write_spec(spec, server.url, edits={"c": " Mention the weather."})
    code, run_dir = applier.run(spec, state)
    assert code == 0, applier.output(applier.started[-1])
    assert Counter(steps_requested(server)) == Counter({"c": 1, "e": 1, "f": 1})
    changed = outputs(run_dir)
    assert {s for s in STEPS if changed[s] != reference.outputs[s]} == {"c", "e", "f"}

    # Back to the original prompt: every result of it is still in the store.
    write_spec(spec, server.url)
    code, run_dir = applier.run(spec, state)
    assert code == 0 and len(server.chat_requests()) == 3
    assert outputs(run_dir) == reference.outputs


# -- budget ------------------------------------------------------------------------------------
def answering_honestly(completion_tokens: int = 400) -> Callable[..., Reply]:
    """Like `answering`, with the usage a real server reports: the prompt's tokens as a
    tokenizer counts them, and an answer of `completion_tokens` cut to the request's
    `max_tokens`."""
    import litellm

    def reply(body: dict[str, Any]) -> Reply:
        answer = answering()(body)
        prompt = litellm.token_counter(model="gpt-4o", messages=body.get("messages", []))
        limit = body.get("max_tokens")
        completion = min(completion_tokens, limit) if isinstance(limit, int) else completion_tokens
        answer.prompt_tokens, answer.completion_tokens = prompt, completion
        return answer

    return reply


def tokens_at_server(server: OpenAIServer) -> int:
    """What the server answered with, in tokens: the run's real spending."""
    reply = answering_honestly()
    total = 0
    for request in server.chat_requests():
        body = request.json or {}
        usage = reply(body | {"messages": body.get("messages", [])})
        total += usage.prompt_tokens + usage.completion_tokens
    return total


@pytest.mark.slow
def test_token_budget_holds_with_concurrent_steps_and_chains_and_a_raised_budget_resumes(
    server: OpenAIServer, applier: Applier, reference: Reference, tmp_path: Path
) -> None:
    """400-token answers (the steps' max_tokens), a limit of 2,000: `b` and `d` run side by
    side, `c` and `e` follow in a chain. Every call in flight holds its worst case, so the run
    stops before the call that could pass the limit, and the server never counts more than the
    limit (before: each call checked only its prompt, and the run spent past it)."""
    server.default = answering_honestly()
    state = tmp_path / "state"
    limit = 2000
    spec = write_spec(tmp_path / "swarm.yaml", server.url, budget=limit, max_tokens=400)

    code, run_dir = applier.run(spec, state)
    assert code == 1, applier.output(applier.started[-1])
    spent = tokens_at_server(server)
    assert spent <= limit, (spent, steps_requested(server))
    stopped = summary(run_dir)
    assert stopped["status"] == "budget_reached" and "budget" in stopped["reason"]
    ran = {row["id"] for row in stopped["steps"] if row["status"] == "succeeded"}
    assert {"a", "b", "d"} <= ran and "f" not in ran, stopped["steps"]
    assert stopped["totals"]["prompt_tokens"] + stopped["totals"]["completion_tokens"] == spent
    # One more call's worst case would have passed the limit: the run stopped just in time.
    assert spent + 400 > limit
    assert "budget reached" in applier.output(applier.started[-1]).lower()

    write_spec(spec, server.url, budget=10_000, max_tokens=400)  # a person raised it
    code, run_dir = applier.run(spec, state)
    assert code == 0, applier.output(applier.started[-1])
    assert Counter(steps_requested(server)) == Counter(STEPS)  # the rest only, once each
    resumed = summary(run_dir)
    assert {row["id"] for row in resumed["steps"] if row["cached"]} == ran
