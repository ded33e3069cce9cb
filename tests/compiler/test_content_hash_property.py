"""A tool change changes the content hash of exactly the steps that see it and their descendants.

Asserted as a property over every example spec (every agent, every tool added, removed or
redefined) and over generated specs — never as pinned digests, which `--snapshot-update` would
accept whatever they became.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codexflow.compiler import compile_spec
from codexflow.compiler.plan import Plan
from codexflow.spec import load_spec, load_spec_text
from codexflow.spec.models import Spec, WebToolSpec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "specs").glob("*.yaml"))
BUILTINS = ("read_file", "write_file", "list_files", "grep", "git_status", "git_diff")
WEB_FETCH = "web_fetch"  # the built-in fetcher: it serves every `kind: web` tool's hosts

Change = tuple[str, Spec, set[str]]  # what changed, the changed spec, the agents that see it


def with_agent_tools(spec: Spec, agent: str, tools: list[str]) -> Spec:
    agents = dict(spec.agents)
    agents[agent] = agents[agent].model_copy(update={"tools": tools})
    return spec.model_copy(update={"agents": agents})


def redefined(tool: Any) -> Any:
    """The same tool with a different schema, as the model would see it."""
    if tool.kind == "shell":
        args = {**tool.args, "extra": {"type": "string", "description": "one more argument"}}
        return type(tool).model_validate({**tool.model_dump(), "args": args})
    if tool.kind == "web":
        return tool.model_copy(update={"allow_hosts": [*tool.allow_hosts, "example.org"]})
    if tool.kind == "mcp":
        return tool.model_copy(update={"include": ["only_this"]})
    return tool.model_copy(update={"description": f"{tool.description} (changed)"})


def users(spec: Spec, tool: str) -> set[str]:
    """The agents that see a spec tool: those listing it, and for a web tool web_fetch's users."""
    web = isinstance(spec.tools[tool], WebToolSpec)
    return {
        name
        for name, agent in spec.agents.items()
        if tool in agent.tools or (web and WEB_FETCH in agent.tools)
    }


def tool_changes(spec: Spec) -> Iterator[Change]:
    """Every single tool change: each tool of each agent removed, each other tool added, each
    spec tool redefined."""
    for name, agent in spec.agents.items():
        for tool in agent.tools:
            kept = [t for t in agent.tools if t != tool]
            yield f"{name} loses {tool}", with_agent_tools(spec, name, kept), {name}
        for tool in [*BUILTINS, *spec.tools]:
            if tool not in agent.tools:
                added = [*agent.tools, tool]
                yield f"{name} gains {tool}", with_agent_tools(spec, name, added), {name}
    for tool in spec.tools:
        tools = {**spec.tools, tool: redefined(spec.tools[tool])}
        yield f"{tool} redefined", spec.model_copy(update={"tools": tools}), users(spec, tool)


def expected_changes(plan: Plan, agents: set[str]) -> set[str]:
    """The steps run by those agents, and everything downstream of them."""
    graph = nx.DiGraph()
    graph.add_nodes_from(step.id for step in plan.steps)
    graph.add_edges_from(plan.edges)
    touched = {step.id for step in plan.steps if step.agent in agents}
    return touched.union(*(nx.descendants(graph, step) for step in touched))


def changed_steps(before: Plan, after: Plan) -> set[str]:
    assert [s.id for s in before.steps] == [s.id for s in after.steps]  # same graph, new hashes
    return {s.id for s in before.steps if s.hash != after.step(s.id).hash}


def assert_property(spec: Spec, changes: Callable[[Spec], Iterator[Change]]) -> int:
    before = compile_spec(spec)
    checked = 0
    for what, changed_spec, agents in changes(spec):
        after = compile_spec(changed_spec)
        assert changed_steps(before, after) == expected_changes(before, agents), what
        checked += 1
    return checked


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_a_tool_change_rehashes_exactly_its_steps_and_their_descendants(path: Path) -> None:
    spec = load_spec(path)
    checked = assert_property(spec, tool_changes)
    assert checked >= len(spec.agents)  # every agent had at least one change tried


def test_the_examples_exercise_every_kind_of_change() -> None:
    """The enumeration above reaches steps that change and steps that must not."""
    kinds = {tool.kind for path in EXAMPLES for tool in load_spec(path).tools.values()}
    assert {"shell", "web"} <= kinds
    spec = load_spec(ROOT / "specs" / "refactor.yaml")
    plan = compile_spec(spec)
    tester_only = expected_changes(plan, {"tester"})
    assert tester_only and tester_only != {step.id for step in plan.steps}


# -- generated specs -------------------------------------------------------------------------
@st.composite
def specs(draw: st.DrawFn) -> Spec:
    """A spec with 1-4 agents holding random tools and 1-6 tasks depending on earlier ones."""
    agent_names = [f"a{i}" for i in range(draw(st.integers(1, 4)))]
    tools_pool = [*BUILTINS[:4], "check", "other", WEB_FETCH]
    lines = [
        "apiVersion: codexflow/v1",
        "name: generated",
        "tools:",
        "  check: {kind: shell, command: [python3, -m, pytest], description: Run the tests.}",
        "  other: {kind: shell, command: [ls], description: List.}",
        "  site: {kind: web, allow_hosts: [docs.python.org]}",
        "agents:",
    ]
    for name in agent_names:
        tools = draw(st.lists(st.sampled_from(tools_pool), unique=True, max_size=4))
        lines.append(f"  {name}: {{role: coder, tools: [{', '.join(tools)}]}}")
    lines.append("tasks:")
    for index in range(draw(st.integers(1, 6))):
        agent = draw(st.sampled_from(agent_names))
        earlier = [f"t{i}" for i in range(index)]
        needs = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=2)) if earlier else []
        lines.append(
            f"  t{index}: {{agent: {agent}, prompt: Step {index}., depends_on: [{', '.join(needs)}]}}"
        )
    return load_spec_text("\n".join(lines) + "\n", "generated.yaml")[0]


@settings(
    max_examples=60,
    deadline=None,  # bound the work (examples), never the seconds
    derandomize=True,  # the same examples on every run: a failure reproduces
    suppress_health_check=[HealthCheck.too_slow],
)
@given(specs())
def test_the_property_holds_on_generated_specs(spec: Spec) -> None:
    assert_property(spec, tool_changes)
