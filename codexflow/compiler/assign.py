"""`agent: auto`: one optimal assignment of all such tasks to agents by capability coverage.

Each auto task must go to an agent whose capabilities include all of its `requires`. Among
those, the assignment minimises one total cost over every auto task at once (a greedy pass,
task by task, can take the only agent a later task could use):
- load: an agent's k-th task beyond its `replicas` costs one load level more (tasks it was
  given by name count too), so work spreads before it queues;
- fit: each capability the agent has beyond what the task requires costs a little, so the
  specialist is preferred over the generalist at equal load.
Ties break by declaration order of tasks and agents, so the result is deterministic.
"""

from __future__ import annotations

from collections import Counter

from codexflow.compiler.plan import Assignment
from codexflow.errors import Issue, SpecError
from codexflow.spec.models import AUTO, SWARM, Spec

LOAD_COST = 100.0  # one load level outweighs any difference in fit
FIT_COST = 1.0
INFEASIBLE = 1e9


def assign_agents(spec: Spec) -> dict[str, Assignment]:
    """task id -> Assignment for every `agent: auto` task."""
    tasks = [name for name, task in spec.tasks.items() if task.agent == AUTO]
    if not tasks:
        return {}
    fixed = Counter(task.agent for task in spec.tasks.values() if task.agent not in (AUTO, SWARM))
    eligible = {
        name: [
            agent
            for agent, declared in spec.agents.items()
            if set(spec.tasks[name].requires) <= set(declared.capabilities)
        ]
        for name in tasks
    }
    uncovered = [name for name in tasks if not eligible[name]]
    if uncovered:
        raise SpecError(
            [
                Issue(
                    spec.name, 0, 0, f"tasks.{name}.requires", "no agent covers every requirement"
                )
                for name in uncovered
            ]
        )
    chosen: dict[str, str] = {}
    # Tasks that share no eligible agent cannot compete: solving each group alone is exact,
    # and much faster than one large matrix (the solver is cubic in the matrix size).
    for group in _independent_groups(tasks, eligible):
        chosen.update(_solve(spec, group, eligible, fixed))
    load = Counter(chosen.values())
    return {
        name: Assignment(
            task=name,
            agent=chosen[name],
            covered=tuple(spec.tasks[name].requires),
            load=load[chosen[name]] + fixed[chosen[name]],
        )
        for name in tasks
    }


def _independent_groups(tasks: list[str], eligible: dict[str, list[str]]) -> list[list[str]]:
    """Connected components of the task–agent eligibility graph (union-find over agents)."""
    parent: dict[str, str] = {}

    def root(agent: str) -> str:
        while parent.setdefault(agent, agent) != agent:
            parent[agent] = parent[parent[agent]]
            agent = parent[agent]
        return agent

    for name in tasks:
        first = root(eligible[name][0])
        for agent in eligible[name][1:]:
            parent[root(agent)] = first
    groups: dict[str, list[str]] = {}
    for name in tasks:
        groups.setdefault(root(eligible[name][0]), []).append(name)
    return list(groups.values())


def _solve(
    spec: Spec, tasks: list[str], eligible: dict[str, list[str]], fixed: Counter[str]
) -> dict[str, str]:
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    needed = [set(spec.tasks[name].requires) for name in tasks]
    agents = list(dict.fromkeys(agent for name in tasks for agent in eligible[name]))
    blocks, owners = [], []
    for agent in agents:
        declared = spec.agents[agent]
        capabilities = set(declared.capabilities)
        mask = np.array([agent in eligible[name] for name in tasks])
        slots = int(mask.sum())  # an agent never takes more tasks than it is eligible for
        fit = np.array([FIT_COST * len(capabilities - need) for need in needed])
        levels = (fixed[agent] + np.arange(slots)) // declared.replicas
        blocks.append(
            np.where(mask[:, None], fit[:, None] + LOAD_COST * levels[None, :], INFEASIBLE)
        )
        owners.extend([agent] * slots)
    cost = np.hstack(blocks)
    rows, columns = linear_sum_assignment(cost)
    return {tasks[row]: owners[column] for row, column in zip(rows, columns, strict=True)}


def explain(assignment: Assignment, spec: Spec) -> str:
    """One line on why this agent: what it covers, how busy it is, who else could have done it."""
    others = [
        agent
        for agent, spec_agent in spec.agents.items()
        if agent != assignment.agent and set(assignment.covered) <= set(spec_agent.capabilities)
    ]
    replicas = spec.agents[assignment.agent].replicas
    text = f"auto: has {', '.join(assignment.covered)}; {assignment.load} task(s) for {replicas} replica(s)"
    return text + (
        f"; also eligible: {', '.join(others)}" if others else "; the only eligible agent"
    )
