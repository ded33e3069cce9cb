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
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    agents = list(spec.agents)
    fixed = Counter(task.agent for task in spec.tasks.values() if task.agent not in (AUTO, SWARM))
    # One column per (agent, slot): slot k is the agent's k-th auto task.
    columns = [(agent, slot) for agent in agents for slot in range(len(tasks))]
    cost = np.full((len(tasks), len(columns)), INFEASIBLE)
    for row, name in enumerate(tasks):
        needed = set(spec.tasks[name].requires)
        for column, (agent, slot) in enumerate(columns):
            capabilities = set(spec.agents[agent].capabilities)
            if not needed <= capabilities:
                continue
            level = (fixed[agent] + slot) // spec.agents[agent].replicas
            cost[row, column] = LOAD_COST * level + FIT_COST * len(capabilities - needed)
    rows, chosen = linear_sum_assignment(cost)
    result: dict[str, Assignment] = {}
    problems = []
    load: Counter[str] = Counter()
    for row, column in zip(rows, chosen, strict=True):
        name = tasks[row]
        agent = columns[column][0]
        if cost[row, column] >= INFEASIBLE:
            problems.append(Issue(spec.name, 1, 1, f"tasks.{name}.requires", "no agent covers every requirement"))
            continue
        load[agent] += 1
        needed = spec.tasks[name].requires
        result[name] = Assignment(
            task=name,
            agent=agent,
            covered=tuple(needed),
            missing=(),
            load=0,
        )
    if problems:
        raise SpecError(problems)
    return {
        name: Assignment(a.task, a.agent, a.covered, a.missing, load[a.agent] + fixed[a.agent])
        for name, a in result.items()
    }


def explain(assignment: Assignment, spec: Spec) -> str:
    """One line on why this agent: what it covers, how busy it is, who else could have done it."""
    others = [
        agent
        for agent, spec_agent in spec.agents.items()
        if agent != assignment.agent and set(assignment.covered) <= set(spec_agent.capabilities)
    ]
    replicas = spec.agents[assignment.agent].replicas
    text = f"auto: has {', '.join(assignment.covered)}; {assignment.load} task(s) for {replicas} replica(s)"
    return text + (f"; also eligible: {', '.join(others)}" if others else "; the only eligible agent")
