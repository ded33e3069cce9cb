"""Checks of the tasks: the agents they name, dependencies and cycles, templates, output schemas."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from codexflow.errors import Issue
from codexflow.spec import templates
from codexflow.spec.diagnostics import choices_hint
from codexflow.spec.models import AUTO, SWARM
from codexflow.spec.yaml_source import Path


def as_mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


class TaskChecks:
    """The task half of the Checker (checks.py), which provides the sections and `report`."""

    issues: list[Issue]
    data: dict[str, Any]
    agents: dict[str, Any]
    tasks: dict[str, Any]
    inputs: dict[str, Any]

    if TYPE_CHECKING:

        def report(
            self,
            path: Path,
            message: str,
            hint: str = "",
            *,
            key: bool = False,
            line_offset: int = 0,
        ) -> None: ...

        def agent_ref(self, path: Path, name: Any, role: str) -> bool: ...

    def dependencies(self) -> dict[str, list[str]]:
        graph: dict[str, list[str]] = {}
        for name, task in self.tasks.items():
            graph[name] = [
                dep for dep in as_strings(as_mapping(task).get("depends_on")) if dep in self.tasks
            ]
        return graph

    def ancestors(self, task: str, graph: dict[str, list[str]]) -> set[str]:
        seen: set[str] = set()
        stack = list(graph.get(task, []))
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(graph.get(current, []))
        return seen

    def check_tasks(self) -> None:
        graph = self.dependencies()
        topology = self.data.get("topology")
        capabilities = {
            name: set(as_strings(as_mapping(agent).get("capabilities")))
            for name, agent in self.agents.items()
        }
        for name, task in self.tasks.items():
            task = as_mapping(task)
            agent = task.get("agent")
            requires = as_strings(task.get("requires"))
            if agent == SWARM:
                if topology is None:
                    self.report(
                        ("tasks", name, "agent"),
                        "`agent: swarm` needs a `topology`",
                        "add `topology: {kind: hierarchical, coordinator: ...}`",
                    )
                if task.get("for_each") is not None:
                    self.report(
                        ("tasks", name, "for_each"),
                        "`for_each` cannot be combined with `agent: swarm`",
                        "give the fan-out to one agent",
                    )
            elif agent == AUTO:
                if not requires:
                    self.report(
                        ("tasks", name, "agent"),
                        "`agent: auto` needs `requires:` (the capabilities to match)",
                    )
                elif not any(set(requires) <= caps for caps in capabilities.values()):
                    # The agent covering most of the list, first-declared on ties.
                    best = max(
                        capabilities,
                        key=lambda a: len(set(requires) & capabilities[a]),
                        default=None,
                    )
                    overlap = set(requires) & capabilities.get(best, set()) if best else set()
                    missing = sorted(set(requires) - overlap)
                    hint = (
                        f"closest is `{best}`, missing {', '.join(missing)}"
                        if overlap
                        else f"no agent lists {', '.join(missing)} in its capabilities"
                    )
                    self.report(
                        ("tasks", name, "requires"),
                        f"no agent has all of {', '.join(requires)}",
                        hint,
                    )
            elif isinstance(agent, str) and self.agent_ref(
                ("tasks", name, "agent"), agent, "agent"
            ):
                missing = sorted(set(requires) - capabilities.get(agent, set()))
                if missing:
                    self.report(
                        ("tasks", name, "requires"),
                        f"the agent `{agent}` lacks {', '.join(missing)}",
                        "add them to its capabilities or use `agent: auto`",
                    )
            for index, dep in enumerate(as_strings(task.get("depends_on"))):
                path = ("tasks", name, "depends_on", index)
                if dep == name:
                    self.report(
                        path, f"the task `{name}` depends on itself", "remove it from depends_on"
                    )
                elif dep not in self.tasks:
                    self.report(
                        path,
                        f"unknown task `{dep}`",
                        choices_hint(dep, set(self.tasks) - {name}, "tasks"),
                    )
            deps = as_strings(task.get("depends_on"))
            if len(set(deps)) != len(deps):
                self.report(("tasks", name, "depends_on"), "a task is listed twice")
            self.check_templates(name, task, self.ancestors(name, graph))
            self.check_output_schema(name, task.get("output"))

    def check_templates(self, name: str, task: dict[str, Any], ancestors: set[str]) -> None:
        has_items = task.get("for_each") is not None
        for field in ("prompt", "for_each"):
            text = task.get(field)
            if not isinstance(text, str):
                continue
            path: Path = ("tasks", name, field)
            if field == "for_each" and templates.single_expression(text) is None:
                self.report(
                    path,
                    "`for_each` must be one `{{ expression }}` or a list",
                    "e.g. `{{ tasks.plan.output.units }}`",
                )
                continue
            try:
                found, defined = templates.references(text)
            except templates.TemplateProblem as exc:
                self.report(path, exc.message, line_offset=exc.line)
                continue
            for reference in found:
                self.check_reference(
                    path, reference, defined, ancestors, has_items and field == "prompt"
                )

    def check_reference(
        self,
        path: Path,
        ref: templates.Reference,
        defined: set[str],
        ancestors: set[str],
        has_items: bool,
    ) -> None:
        line = ref.line  # within the template
        if ref.root in defined:
            return
        if ref.root not in templates.ROOTS:
            self.report(
                path,
                f"unknown template variable `{ref.root}`",
                choices_hint(ref.root, templates.ROOTS, "variables"),
                line_offset=line,
            )
        elif ref.root == "item" and not has_items:
            self.report(path, "`item` is only defined in tasks with `for_each`", line_offset=line)
        elif ref.root == "inputs" and ref.path and ref.path[0] not in self.inputs:
            self.report(
                path,
                f"unknown input `{ref.path[0]}`",
                choices_hint(ref.path[0], set(self.inputs), "inputs")
                or "declare it under `inputs:`",
                line_offset=line,
            )
        elif ref.root == "tasks" and ref.path:
            target = ref.path[0]
            task = path[1]
            if target not in self.tasks:
                self.report(
                    path,
                    f"unknown task `{target}`",
                    choices_hint(target, set(self.tasks), "tasks"),
                    line_offset=line,
                )
            elif target == task:
                self.report(path, f"the task `{task}` cannot read its own output", line_offset=line)
            elif target not in ancestors:
                self.report(
                    path,
                    f"reads `tasks.{target}` but does not depend on `{target}`",
                    f"add `{target}` to depends_on",
                    line_offset=line,
                )
            elif len(ref.path) < 2 or ref.path[1] != "output":
                self.report(
                    path,
                    f"`tasks.{target}` has only `output`",
                    f"write `tasks.{target}.output`",
                    line_offset=line,
                )

    def check_output_schema(self, name: str, schema: Any) -> None:
        if not isinstance(schema, dict):
            return
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        path: Path = ("tasks", name, "output")
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            where = (*path, *exc.path) if exc.path else path
            self.report(tuple(where), f"not a valid JSON Schema: {exc.message}")
            return
        if schema.get("type") != "object":
            self.report(
                path,
                "the output schema must describe an object (`type: object`)",
                "wrap a list: `{type: object, properties: {items: {type: array}}}`",
            )

    # -- cycles ----------------------------------------------------------------------------------
    def check_cycles(self) -> None:
        for cycle in find_cycles(self.dependencies()):
            first = cycle[0]
            members = " -> ".join([*cycle, first])
            self.report(
                ("tasks", first, "depends_on"),
                f"dependency cycle: {members}",
                "remove one of these dependencies",
            )


def find_cycles(graph: dict[str, list[str]]) -> Iterator[list[str]]:
    """Each elementary cycle found by a depth-first search, once, starting at its first-declared member."""
    order = {name: index for index, name in enumerate(graph)}
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    reported: set[frozenset[str]] = set()
    for root in graph:
        if state.get(root):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(graph[root]))]
        path = [root]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                state[node] = 2
            elif child == node:
                continue  # a self-dependency is reported on its own, more plainly
            elif state.get(child) == 1:
                cycle = path[path.index(child) :]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    start = min(range(len(cycle)), key=lambda i: order[cycle[i]])
                    # Dependencies point backwards; print the cycle in execution order.
                    rotated = cycle[start:] + cycle[:start]
                    yield [rotated[0], *reversed(rotated[1:])]
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(graph[child])))
