"""Checks across the spec that no single field can make: references, cycles, templates, coverage.

They read the raw data defensively, so that they still run (and report) when the models found
other problems in the same file: the user sees every problem at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from codexflow.errors import Issue
from codexflow.spec import templates
from codexflow.spec.diagnostics import choices_hint, dotted, suggest
from codexflow.spec.models import AUTO, BUILTIN_TOOLS, JSON_TYPES, SWARM, is_json_type
from codexflow.spec.yaml_source import Path, Source


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


class Checker:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.data = _mapping(source.data)
        self.issues: list[Issue] = []
        self.agents = _mapping(self.data.get("agents"))
        self.tasks = _mapping(self.data.get("tasks"))
        self.tools = _mapping(self.data.get("tools"))
        self.inputs = _mapping(self.data.get("inputs"))

    def report(
        self, path: Path, message: str, hint: str = "", *, key: bool = False, line_offset: int = 0
    ) -> None:
        position = self.source.position(path, key=key)
        line, col = position.line, position.col
        if line_offset:
            # A line inside a multi-line template: block scalars start on the next line.
            if position.block:
                line, col = line + line_offset, 1
            else:
                line += line_offset - 1
        self.issues.append(Issue(self.source.path, line, col, dotted(path), message, hint))

    def run(self) -> list[Issue]:
        self.check_agents()
        self.check_topology()
        self.check_tools()
        self.check_providers()
        self.check_inputs()
        self.check_tasks()
        self.check_cycles()
        self.check_schedule()
        return self.issues

    # -- agents and topology -------------------------------------------------------------
    def check_agents(self) -> None:
        declared = set(self.tools)
        mcp = {name for name, tool in self.tools.items() if _mapping(tool).get("kind") == "mcp"}
        known = set(BUILTIN_TOOLS) | declared
        if any(_mapping(tool).get("kind") == "web" for tool in self.tools.values()):
            known.add("web_fetch")  # the built-in fetcher exists once the spec allows some hosts
        for name, agent in self.agents.items():
            if name in (SWARM, AUTO):
                self.report(
                    ("agents", name),
                    f"`{name}` is reserved for tasks (`agent: {name}`)",
                    "rename the agent",
                    key=True,
                )
            tools = _strings(_mapping(agent).get("tools"))
            for index, tool in enumerate(tools):
                prefix = tool.split(".", 1)[0]
                if tool in known or ("." in tool and prefix in mcp):
                    continue
                if "." in tool and prefix in declared:
                    self.report(
                        ("agents", name, "tools", index),
                        f"`{prefix}` is not an MCP tool, so `{tool}` does not exist",
                    )
                    continue
                hint = choices_hint(tool, known, "tools") or "declare it under `tools:`"
                if tool == "web_fetch":
                    hint = "the web is off: declare a `kind: web` tool with `allow_hosts`"
                self.report(("agents", name, "tools", index), f"unknown tool `{tool}`", hint)
            if len(set(tools)) != len(tools):
                self.report(("agents", name, "tools"), "a tool is listed twice")

    def agent_ref(self, path: Path, name: Any, role: str) -> bool:
        if not isinstance(name, str):
            return False
        if name not in self.agents:
            self.report(
                path,
                f"{role} `{name}` is not an agent",
                choices_hint(name, set(self.agents), "agents"),
            )
            return False
        return True

    def check_topology(self) -> None:
        topology = self.data.get("topology")
        if not isinstance(topology, dict):
            return
        kind = topology.get("kind")
        members: list[str] = []
        if "coordinator" in topology:
            self.agent_ref(("topology", "coordinator"), topology["coordinator"], "coordinator")
        field = "order" if kind == "ring" else "members"
        for index, member in enumerate(_strings(topology.get(field))):
            if self.agent_ref(("topology", field, index), member, "member"):
                if member in members:
                    self.report(("topology", field, index), f"`{member}` is listed twice")
                members.append(member)
        coordinator = topology.get("coordinator")
        if kind in ("hierarchical", "star") and coordinator in members:
            self.report(
                ("topology", "members"), f"the coordinator `{coordinator}` cannot also be a member"
            )
        lone = isinstance(coordinator, str) and not set(self.agents) - {coordinator}
        if kind in ("hierarchical", "star") and "members" not in topology and lone:
            self.report(
                ("topology",), f"a {kind} topology needs at least one agent besides `{coordinator}`"
            )
        if kind == "mesh" and "members" not in topology and len(self.agents) < 2:
            self.report(("topology",), "a mesh needs at least two agents")

    # -- tools, providers, inputs -------------------------------------------------------
    def check_tools(self) -> None:
        for name, tool in self.tools.items():
            tool = _mapping(tool)
            if name in BUILTIN_TOOLS:
                self.report(
                    ("tools", name), f"`{name}` is a built-in tool; pick another name", key=True
                )
            if tool.get("kind") != "shell":
                continue
            command = tool.get("command")
            words: list[str] = []
            if isinstance(command, str):
                try:
                    words = templates.split_command(command)
                except ValueError as exc:
                    self.report(
                        ("tools", name, "command"),
                        f"cannot split the command: {exc}",
                        "close the quote",
                    )
                    continue
                if not words:
                    self.report(("tools", name, "command"), "the command is empty")
            elif isinstance(command, list):
                words = _strings(command)
            arguments = set(_mapping(tool.get("args")))
            used: set[str] = set()
            for word in words:
                try:
                    found, defined = templates.references(word)
                except templates.TemplateProblem as exc:
                    self.report(("tools", name, "command"), exc.message)
                    continue
                for reference in found:
                    if reference.root in defined:
                        continue
                    used.add(reference.root)
                    if reference.root not in arguments:
                        self.report(
                            ("tools", name, "command"),
                            f"the command uses `{reference.root}`, which is not declared under `args`",
                            suggest(reference.root, arguments)
                            or f"add `args: {{{reference.root}: {{type: string}}}}`",
                        )
            for argument in sorted(arguments - used):
                self.report(
                    ("tools", name, "args", argument),
                    f"the argument `{argument}` is never used in the command",
                    key=True,
                )

    def check_providers(self) -> None:
        defaults = _mapping(self.data.get("defaults"))
        models = [defaults.get("model", "openai/gpt-4o-mini")]
        for agent in self.agents.values():
            agent = _mapping(agent)
            models.append(agent.get("model"))
            models.extend(_strings(agent.get("fallbacks")))
        prefixes = {
            model.split("/", 1)[0] for model in models if isinstance(model, str) and "/" in model
        }
        for name in _mapping(self.data.get("providers")):
            if name not in prefixes:
                self.report(
                    ("providers", name),
                    f"no model uses the provider `{name}`",
                    choices_hint(name, prefixes, "providers in use")
                    or "limits apply to the prefix of model strings",
                    key=True,
                )

    def check_inputs(self) -> None:
        for name, spec in self.inputs.items():
            spec = _mapping(spec)
            kind = spec.get("type", "string")
            default = spec.get("default")
            known = isinstance(kind, str) and kind in JSON_TYPES
            if default is not None and known and not is_json_type(default, kind):
                self.report(("inputs", name, "default"), f"the default is not of type {kind}")
            enum = spec.get("enum")
            if isinstance(enum, list) and default is not None and default not in enum:
                self.report(("inputs", name, "default"), "the default is not one of `enum`")

    # -- tasks ---------------------------------------------------------------------------
    def dependencies(self) -> dict[str, list[str]]:
        graph: dict[str, list[str]] = {}
        for name, task in self.tasks.items():
            graph[name] = [
                dep for dep in _strings(_mapping(task).get("depends_on")) if dep in self.tasks
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
            name: set(_strings(_mapping(agent).get("capabilities")))
            for name, agent in self.agents.items()
        }
        for name, task in self.tasks.items():
            task = _mapping(task)
            agent = task.get("agent")
            requires = _strings(task.get("requires"))
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
            for index, dep in enumerate(_strings(task.get("depends_on"))):
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
            deps = _strings(task.get("depends_on"))
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
        where = {"line_offset": ref.line}
        if ref.root in defined:
            return
        if ref.root not in templates.ROOTS:
            self.report(
                path,
                f"unknown template variable `{ref.root}`",
                choices_hint(ref.root, templates.ROOTS, "variables"),
                **where,
            )
        elif ref.root == "item" and not has_items:
            self.report(path, "`item` is only defined in tasks with `for_each`", **where)
        elif ref.root == "inputs" and ref.path and ref.path[0] not in self.inputs:
            self.report(
                path,
                f"unknown input `{ref.path[0]}`",
                choices_hint(ref.path[0], set(self.inputs), "inputs")
                or "declare it under `inputs:`",
                **where,
            )
        elif ref.root == "tasks" and ref.path:
            target = ref.path[0]
            task = path[1]
            if target not in self.tasks:
                self.report(
                    path,
                    f"unknown task `{target}`",
                    choices_hint(target, set(self.tasks), "tasks"),
                    **where,
                )
            elif target == task:
                self.report(path, f"the task `{task}` cannot read its own output", **where)
            elif target not in ancestors:
                self.report(
                    path,
                    f"reads `tasks.{target}` but does not depend on `{target}`",
                    f"add `{target}` to depends_on",
                    **where,
                )
            elif len(ref.path) < 2 or ref.path[1] != "output":
                self.report(
                    path,
                    f"`tasks.{target}` has only `output`",
                    f"write `tasks.{target}.output`",
                    **where,
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

    # -- cycles and schedule ---------------------------------------------------------------
    def check_cycles(self) -> None:
        for cycle in find_cycles(self.dependencies()):
            first = cycle[0]
            members = " -> ".join([*cycle, first])
            self.report(
                ("tasks", first, "depends_on"),
                f"dependency cycle: {members}",
                "remove one of these dependencies",
            )

    def check_schedule(self) -> None:
        schedule = self.data.get("schedule")
        if not isinstance(schedule, dict):
            return
        cron = schedule.get("cron")
        if isinstance(cron, str):
            problem = cron_problem(cron)
            if problem:
                self.report(
                    ("schedule", "cron"),
                    problem,
                    "five fields: minute hour day-of-month month day-of-week",
                )
        zone = schedule.get("timezone")
        if isinstance(zone, str):
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                self.report(
                    ("schedule", "timezone"),
                    f"unknown time zone `{zone}`",
                    "an IANA name such as `Europe/Paris` or `UTC`",
                )


def cron_problem(expression: str) -> str:
    if len(expression.split()) != 5:
        return f"`{expression}` has {len(expression.split())} fields, not 5"
    from datetime import datetime

    from cronsim import CronSim, CronSimError

    try:
        CronSim(expression, datetime(2026, 1, 1))
    except CronSimError as exc:
        return f"not a valid cron expression: {exc}"
    return ""


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


def check_references(source: Source) -> list[Issue]:
    return Checker(source).run()
