"""Optimal `agent: auto` assignment, and content hashes that change exactly where they should."""

from __future__ import annotations

import networkx as nx

from codexflow.compiler import compile_spec
from codexflow.compiler.assign import assign_agents
from codexflow.spec import load_spec, load_spec_text


def spec_of(text: str):
    return load_spec_text(text, "t.yaml")[0]


def test_assignment_is_optimal_where_greedy_is_wrong() -> None:
    # Greedy, task by task: `lint` takes x (the better fit), then `port` can only queue on x.
    # Optimal: lint -> y (a slightly worse fit), port -> x, nobody waits.
    spec = spec_of("""apiVersion: codexflow/v1
name: t
agents:
  x: {role: coder, capabilities: [python, rust]}
  y: {role: coder, capabilities: [python, docs, sql]}
tasks:
  lint: {agent: auto, requires: [python], prompt: Lint.}
  port: {agent: auto, requires: [python, rust], prompt: Port.}
""")
    chosen = {name: a.agent for name, a in assign_agents(spec).items()}
    assert chosen == {"lint": "y", "port": "x"}


def test_replicas_take_several_tasks_before_anyone_queues() -> None:
    spec = spec_of("""apiVersion: codexflow/v1
name: t
agents:
  big: {role: coder, capabilities: [python], replicas: 2}
  small: {role: coder, capabilities: [python]}
tasks:
  a: {agent: auto, requires: [python], prompt: A.}
  b: {agent: auto, requires: [python], prompt: B.}
  c: {agent: auto, requires: [python], prompt: C.}
  d: {agent: auto, requires: [python], prompt: D.}
""")
    result = assign_agents(spec)
    # Three run at once (big's two replicas and small); the fourth queues at load level 1,
    # where big and small tie: the tie goes to the first-declared agent.
    assert {name: a.agent for name, a in result.items()} == {
        "a": "big",
        "b": "big",
        "c": "small",
        "d": "big",
    }
    assert (result["a"].load, result["c"].load) == (3, 1)
    assert assign_agents(spec) == result  # deterministic


def test_named_tasks_count_as_load() -> None:
    spec = spec_of("""apiVersion: codexflow/v1
name: t
agents:
  x: {role: coder, capabilities: [python]}
  y: {role: coder, capabilities: [python, extra]}
tasks:
  busy: {agent: x, prompt: Busy.}
  free: {agent: auto, requires: [python], prompt: Free.}
""")
    assert assign_agents(spec)["free"].agent == "y"  # x already has a task


def test_plan_records_why(repo_root) -> None:
    plan = compile_spec(load_spec("specs/triage.yaml"))
    reason = plan.step("reproduce_numeric").reason
    assert reason.startswith("auto: has numerics, testing")


def _edited(repo_root, task: str, new_prompt: str):
    spec = load_spec("specs/refactor.yaml")
    tasks = dict(spec.tasks)
    tasks[task] = tasks[task].model_copy(update={"prompt": new_prompt})
    return spec.model_copy(update={"tasks": tasks})


def test_editing_one_prompt_changes_that_step_and_its_descendants_only(repo_root) -> None:
    before = compile_spec(load_spec("specs/refactor.yaml"))
    after = compile_spec(
        _edited(repo_root, "test", "Run the tests and report. {{ tasks.refactor.output }}")
    )
    graph = nx.DiGraph(before.edges)
    affected = {"test", *nx.descendants(graph, "test")}
    changed = {step.id for step in before.steps if step.hash != after.step(step.id).hash}
    assert changed == affected
    assert "plan" not in changed and "refactor[*]" not in changed
    assert "commit" in changed


def test_hashes_are_stable_and_cover_the_model(repo_root) -> None:
    spec = load_spec("specs/refactor.yaml")
    first, second = compile_spec(spec), compile_spec(spec)
    assert [s.hash for s in first.steps] == [s.hash for s in second.steps]
    agents = dict(spec.agents)
    agents["tester"] = agents["tester"].model_copy(update={"model": "anthropic/claude-sonnet-4-5"})
    changed_model = compile_spec(spec.model_copy(update={"agents": agents}))
    changed = {s.id for s in first.steps if s.hash != changed_model.step(s.id).hash}
    assert "test" in changed and "plan" not in changed and "refactor[*]" not in changed
