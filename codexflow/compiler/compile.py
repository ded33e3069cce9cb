"""`compile_spec`: Spec -> Plan, as a readable sequence of small passes over a networkx graph."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from codexflow.compiler.assign import assign_agents, explain
from codexflow.compiler.expand import Draft, expand_task
from codexflow.compiler.inputs import resolve_inputs
from codexflow.compiler.plan import Assignment, Plan, Step
from codexflow.errors import Issue, SpecError
from codexflow.spec.models import AUTO, Spec, WebToolSpec

WEB_FETCH = "web_fetch"  # the built-in fetcher enabled by `kind: web` tools
HASH_VERSION = "codexflow-step-v1"  # bump when the hash material changes meaning


def compile_spec(spec: Spec, inputs: dict[str, Any] | None = None) -> Plan:
    """Compile a validated spec (and the run's input overrides) into a frozen Plan."""
    values = resolve_inputs(spec, inputs)
    assignments = assign_agents(spec)
    drafts, results = build_steps(spec, assignments)
    graph = build_graph(spec, drafts, results)
    order = check_acyclic(graph)
    groups = parallel_groups(graph)
    hashes = content_hashes(spec, graph, order, drafts)
    return freeze(spec, graph, order, groups, drafts, hashes, values, assignments, results)


# -- pass 1: steps --------------------------------------------------------------------------
def build_steps(
    spec: Spec, assignments: dict[str, Assignment]
) -> tuple[dict[str, Draft], dict[str, str]]:
    """Every task's steps (topologies expanded, approval gates added); task -> its result step."""
    drafts: dict[str, Draft] = {}
    results: dict[str, str] = {}
    for name, task in spec.tasks.items():
        agent = assignments[name].agent if task.agent == AUTO else task.agent
        expansion = expand_task(name, task, spec, agent)
        steps = expansion.steps
        if task.agent == AUTO:
            for draft in steps:
                draft.reason = explain(assignments[name], spec)
        if task.approval:
            gate = Draft(
                f"{name}.approval", name, "approval", None, upstream=True, reason="approval: true"
            )
            for draft in steps:
                if draft.upstream:
                    draft.upstream = False
                    draft.after.append(gate.id)
            steps = [gate, *steps]
        for draft in steps:
            drafts[draft.id] = draft
        results[name] = expansion.result
    return drafts, results


# -- pass 2: edges ----------------------------------------------------------------------------
def build_graph(spec: Spec, drafts: dict[str, Draft], results: dict[str, str]) -> Any:
    """Edges inside tasks, then from each dependency's result step to the task's entry steps."""
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from(drafts)
    for draft in drafts.values():
        for before in draft.after:
            graph.add_edge(before, draft.id)
        if draft.upstream or draft.kind == "approval":
            upstream = [results[dep] for dep in spec.tasks[draft.task].depends_on]
            graph.add_edges_from((before, draft.id) for before in upstream)
            if draft.kind != "approval":
                draft.context = [*upstream, *draft.context]
    # The gate passes its task's dependencies on: the entry steps behind it still see them.
    for draft in drafts.values():
        gate = f"{draft.task}.approval"
        if gate in draft.after:
            draft.context = [
                *(results[dep] for dep in spec.tasks[draft.task].depends_on),
                *draft.context,
            ]
    return graph


# -- pass 3: order ------------------------------------------------------------------------------
def check_acyclic(graph: Any) -> list[str]:
    """A topological order; a cycle (normally caught by the spec checks) is reported by members."""
    import networkx as nx

    # is_directed_acyclic_graph is fast; find_cycle on an acyclic graph is not (DESIGN.md facts).
    if not nx.is_directed_acyclic_graph(graph):
        cycle = [edge[0] for edge in nx.find_cycle(graph)]
        members = " -> ".join([*cycle, cycle[0]])
        raise SpecError([Issue("<plan>", 1, 1, "tasks", f"dependency cycle: {members}")])
    return list(nx.lexicographical_topological_sort(graph, key=_declared_order(graph)))


def _declared_order(graph: Any) -> Any:
    position = {node: index for index, node in enumerate(graph.nodes)}
    return lambda node: f"{position[node]:09d}"


def parallel_groups(graph: Any) -> list[list[str]]:
    """Steps that can run at the same time: the generations of the graph (longest path from a root)."""
    import networkx as nx

    position = {node: index for index, node in enumerate(graph.nodes)}
    return [
        sorted(generation, key=position.__getitem__)
        for generation in nx.topological_generations(graph)
    ]


# -- pass 4: content hashes -------------------------------------------------------------------
def content_hashes(
    spec: Spec, graph: Any, order: list[str], drafts: dict[str, Draft]
) -> dict[str, str]:
    """Each step's hash covers what decides its answer and the hashes of the steps before it.

    A change anywhere therefore changes exactly that step's hash and its descendants' hashes.
    """
    hashes: dict[str, str] = {}
    for step_id in order:
        material = {
            "version": HASH_VERSION,
            "step": _definition(spec, drafts[step_id]),
            "upstream": sorted(hashes[before] for before in graph.predecessors(step_id)),
        }
        encoded = json.dumps(
            material, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        )
        hashes[step_id] = hashlib.sha256(encoded.encode("utf-8")).hexdigest()
    return hashes


def _definition(spec: Spec, draft: Draft) -> dict[str, Any]:
    task = spec.tasks[draft.task]
    base: dict[str, Any] = {
        "id": draft.id,
        "kind": draft.kind,
        "prompt": task.prompt,
        "instruction": draft.instruction,
        "context": draft.context,
        "output": draft.output_schema,
        "for_each": draft.for_each,
    }
    if draft.agent is None:
        return base
    agent = spec.agents[draft.agent]
    tools = {name: _tool_definition(spec, name) for name in agent.tools}
    return {
        **base,
        "agent": draft.agent,
        "model": agent.model or spec.defaults.model,
        "fallbacks": agent.fallbacks,
        "temperature": agent.temperature
        if agent.temperature is not None
        else spec.defaults.temperature,
        "max_tokens": spec.defaults.max_tokens,
        "system": [agent.role, agent.goal, agent.instructions],
        "tools": tools,
        "workspace": spec.workspace,
    }


def _tool_definition(spec: Spec, name: str) -> Any:
    """What decides a tool's schema and reach. The built-in web_fetch serves the hosts of every
    `kind: web` tool (its description lists them), so their definitions are part of it."""
    if name in spec.tools:
        return spec.tools[name].model_dump(mode="json")
    if name == WEB_FETCH:
        return {
            tool: spec.tools[tool].model_dump(mode="json")
            for tool in sorted(spec.tools)
            if isinstance(spec.tools[tool], WebToolSpec)
        }
    return "builtin"


# -- pass 5: freeze ---------------------------------------------------------------------------
def freeze(
    spec: Spec,
    graph: Any,
    order: list[str],
    groups: list[list[str]],
    drafts: dict[str, Draft],
    hashes: dict[str, str],
    inputs: dict[str, Any],
    assignments: dict[str, Assignment],
    results: dict[str, str],
) -> Plan:
    group_of = {step_id: index for index, group in enumerate(groups) for step_id in group}
    steps = tuple(
        _step(spec, graph, drafts[step_id], hashes[step_id], group_of[step_id]) for step_id in order
    )
    position = {step_id: index for index, step_id in enumerate(order)}
    edges = tuple(sorted(graph.edges, key=lambda edge: (position[edge[1]], position[edge[0]])))
    return Plan(
        name=spec.name,
        steps=steps,
        edges=edges,
        groups=tuple(tuple(group) for group in groups),
        inputs=inputs,
        assignments=tuple(assignments.values()),
        task_results=dict(results),
    )


def _step(spec: Spec, graph: Any, draft: Draft, content_hash: str, group: int) -> Step:
    task = spec.tasks[draft.task]
    defaults = spec.defaults
    agent = spec.agents[draft.agent] if draft.agent else None
    return Step(
        id=draft.id,
        task=draft.task,
        kind=draft.kind,
        agent=draft.agent,
        model=(agent.model or defaults.model) if agent else None,
        fallbacks=tuple(agent.fallbacks) if agent else (),
        prompt=task.prompt,
        instruction=draft.instruction,
        depends_on=tuple(graph.predecessors(draft.id)),
        context=tuple(dict.fromkeys(draft.context)),
        tools=tuple(agent.tools) if agent else (),
        output_schema=draft.output_schema,
        for_each=draft.for_each,
        temperature=(
            agent.temperature if agent and agent.temperature is not None else defaults.temperature
        ),
        max_tokens=defaults.max_tokens,
        max_turns=(agent.max_turns if agent and agent.max_turns else defaults.max_turns),
        retries=task.retries if task.retries is not None else defaults.retries,
        retry_delay=defaults.retry_delay,
        timeout=task.timeout if task.timeout is not None else defaults.timeout,
        cache=task.cache,
        is_result=draft.is_result,
        group=group,
        reason=draft.reason,
        hash=content_hash,
    )
