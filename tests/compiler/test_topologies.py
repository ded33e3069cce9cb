"""Each topology compiles to real graph structure, and visibility follows it."""

from __future__ import annotations

import itertools

import pytest

from codexflow.compiler import compile_spec
from codexflow.compiler.compile import check_acyclic
from codexflow.errors import SpecError
from codexflow.spec import load_spec_text


def swarm(topology: str, agents: str = "a b c", extra_tasks: str = "") -> object:
    agent_lines = "\n".join(f"  {name}: {{role: worker}}" for name in agents.split())
    text = f"""apiVersion: codexflow/v1
name: t
agents:
{agent_lines}
topology: {topology}
tasks:
  work: {{agent: swarm, prompt: Do the work.}}
{extra_tasks}"""
    spec, _ = load_spec_text(text, "t.yaml")
    return compile_spec(spec)


def edges_between(plan, ids: list[str]) -> list[tuple[str, str]]:
    chosen = set(ids)
    return [edge for edge in plan.edges if edge[0] in chosen and edge[1] in chosen]


def test_star_spokes_run_in_parallel_and_see_only_the_hub() -> None:
    plan = swarm("{kind: star, coordinator: a}", "a b c d")
    spokes = ["work.b", "work.c", "work.d"]
    assert edges_between(plan, spokes) == []
    for spoke in spokes:
        step = plan.step(spoke)
        assert step.depends_on == ("work.hub",)
        assert step.context == ("work.hub",)
    assert len({plan.step(s).group for s in spokes}) == 1
    merge = plan.step("work.merge")
    assert set(merge.depends_on) == set(spokes) and merge.agent == "a" and merge.is_result
    assert plan.task_results["work"] == "work.merge"


def test_ring_of_three_with_two_rounds_is_a_chain_of_six() -> None:
    plan = swarm("{kind: ring, order: [a, b, c], rounds: 2}")
    ids = [step.id for step in plan.steps]
    assert ids == [f"work.ring[{lap}].{agent}" for lap in (1, 2) for agent in "abc"]
    assert list(plan.edges) == list(itertools.pairwise(ids))
    for before, after in itertools.pairwise(ids):
        assert plan.step(after).context == (before,)  # each sees only the previous answer
    assert [len(group) for group in plan.groups] == [1] * 6
    assert plan.task_results["work"] == ids[-1]


def test_mesh_round_depends_on_every_step_of_the_previous_round() -> None:
    plan = swarm("{kind: mesh, rounds: 2}")
    for round_ in (1, 2):
        previous = {f"work.mesh[{round_ - 1}].{peer}" for peer in "abc"}
        for peer in "abc":
            step = plan.step(f"work.mesh[{round_}].{peer}")
            assert set(step.depends_on) == previous
            assert set(step.context) == previous
    first_round = [f"work.mesh[0].{peer}" for peer in "abc"]
    assert edges_between(plan, first_round) == []
    merge = plan.step("work.merge")
    assert merge.agent == "a"  # the first peer merges when no coordinator is named
    assert set(merge.depends_on) == {f"work.mesh[2].{peer}" for peer in "abc"}
    assert len(plan.steps) == 3 * 3 + 1


def test_hierarchical_decomposes_fans_out_and_merges() -> None:
    plan = swarm("{kind: hierarchical, coordinator: a}")
    decompose = plan.step("work.decompose")
    assert decompose.kind == "decompose" and decompose.agent == "a"
    assert decompose.output_schema["properties"]["parts"]["required"] == ["b", "c"]
    for worker in "bc":
        step = plan.step(f"work.{worker}")
        assert step.depends_on == ("work.decompose",) and step.agent == worker
    assert edges_between(plan, ["work.b", "work.c"]) == []
    merge = plan.step("work.merge")
    assert merge.kind == "merge" and set(merge.depends_on) == {"work.b", "work.c"}
    assert "work.decompose" in merge.context


def test_dependencies_connect_result_steps_to_entry_steps() -> None:
    plan = swarm(
        "{kind: star, coordinator: a}",
        extra_tasks="  after: {agent: b, depends_on: [work], prompt: 'Use {{ tasks.work.output }}.'}\n"
        "  before: {agent: c, prompt: Prepare.}\n",
    )
    assert plan.step("after").depends_on == ("work.merge",)
    assert plan.step("after").context == ("work.merge",)


def test_approval_gate_comes_before_the_task_and_passes_context_on() -> None:
    text = """apiVersion: codexflow/v1
name: t
agents: {a: {role: coder}}
tasks:
  plan: {agent: a, prompt: Plan.}
  ship: {agent: a, depends_on: [plan], approval: true, prompt: 'Ship {{ tasks.plan.output }}.'}
"""
    spec, _ = load_spec_text(text, "t.yaml")
    plan = compile_spec(spec)
    gate = plan.step("ship.approval")
    assert gate.kind == "approval" and gate.agent is None and gate.depends_on == ("plan",)
    ship = plan.step("ship")
    assert ship.depends_on == ("ship.approval",) and ship.context == ("plan",)


def test_fan_out_is_one_template_step() -> None:
    text = """apiVersion: codexflow/v1
name: t
agents: {a: {role: coder}}
tasks:
  plan: {agent: a, prompt: Plan., output: {type: object, properties: {units: {type: array}}}}
  each: {agent: a, depends_on: [plan], for_each: '{{ tasks.plan.output.units }}', prompt: 'Do {{ item }}.'}
  fixed: {agent: a, for_each: [x, y], prompt: 'Do {{ item }}.'}
"""
    spec, _ = load_spec_text(text, "t.yaml")
    plan = compile_spec(spec)
    assert plan.step("each[*]").for_each == "{{ tasks.plan.output.units }}"
    assert plan.step("fixed[*]").for_each == ("x", "y")
    assert plan.task_results == {"plan": "plan", "each": "each[*]", "fixed": "fixed[*]"}


def test_a_cycle_in_the_graph_is_reported_by_its_members() -> None:
    import networkx as nx

    graph = nx.DiGraph([("write", "check"), ("check", "fix"), ("fix", "write"), ("x", "write")])
    with pytest.raises(SpecError) as raised:
        check_acyclic(graph)
    message = raised.value.issues[0].message
    assert message.startswith("dependency cycle: ")
    members = message.removeprefix("dependency cycle: ").split(" -> ")
    assert members[0] == members[-1] and set(members) == {"write", "check", "fix"}
