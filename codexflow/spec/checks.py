"""Checks across the spec that no single field can make: references, cycles, templates, coverage.

They read the raw data defensively, so that they still run (and report) when the models found
other problems in the same file: the user sees every problem at once.
"""

from __future__ import annotations

from typing import Any

from codexflow.errors import Issue, Severity
from codexflow.spec import pyrefs, templates
from codexflow.spec.diagnostics import choices_hint, dotted, suggest
from codexflow.spec.models import AUTO, BUILTIN_TOOLS, JSON_TYPES, SWARM, is_json_type
from codexflow.spec.preflight import PreflightChecks
from codexflow.spec.task_checks import TaskChecks, as_mapping, as_strings
from codexflow.spec.yaml_source import Path, Source


class Checker(TaskChecks, PreflightChecks):
    """Every cross check of one source; `run` returns the issues found."""

    def __init__(self, source: Source, *, check_workspace: bool = True) -> None:
        self.source = source
        self.check_workspace_exists = check_workspace
        self.data = as_mapping(source.data)
        self.issues: list[Issue] = []
        self.agents = as_mapping(self.data.get("agents"))
        self.tasks = as_mapping(self.data.get("tasks"))
        self.tools = as_mapping(self.data.get("tools"))
        self.inputs = as_mapping(self.data.get("inputs"))

    def report(
        self,
        path: Path,
        message: str,
        hint: str = "",
        *,
        key: bool = False,
        line_offset: int = 0,
        severity: Severity = "error",
    ) -> None:
        position = self.source.position(path, key=key)
        line, col = position.line, position.col
        if line_offset:
            # A line inside a multi-line template: block scalars start on the next line.
            if position.block:
                line, col = line + line_offset, 1
            else:
                line += line_offset - 1
        self.issues.append(
            Issue(self.source.path, line, col, dotted(path), message, hint, severity)
        )

    def run(self) -> list[Issue]:
        self.check_agents()
        self.check_topology()
        self.check_tools()
        self.check_providers()
        self.check_inputs()
        self.check_tasks()
        self.check_cycles()
        self.check_schedule()
        self.run_preflight()
        self.check_memory()
        return self.issues

    # -- agents and topology -------------------------------------------------------------
    def check_agents(self) -> None:
        declared = set(self.tools)
        mcp = {name for name, tool in self.tools.items() if as_mapping(tool).get("kind") == "mcp"}
        known = set(BUILTIN_TOOLS) | declared
        if any(as_mapping(tool).get("kind") == "web" for tool in self.tools.values()):
            known.add("web_fetch")  # the built-in fetcher exists once the spec allows some hosts
        for name, agent in self.agents.items():
            if name in (SWARM, AUTO):
                self.report(
                    ("agents", name),
                    f"`{name}` is reserved for tasks (`agent: {name}`)",
                    "rename the agent",
                    key=True,
                )
            tools = as_strings(as_mapping(agent).get("tools"))
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
        for index, member in enumerate(as_strings(topology.get(field))):
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
            tool = as_mapping(tool)
            if name in BUILTIN_TOOLS:
                self.report(
                    ("tools", name), f"`{name}` is a built-in tool; pick another name", key=True
                )
            if tool.get("kind") == "python":
                self.check_python_ref(name, tool)
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
                words = as_strings(command)
            arguments = set(as_mapping(tool.get("args")))
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

    def check_python_ref(self, name: str, tool: dict[str, Any]) -> None:
        ref = tool.get("ref")
        if not isinstance(ref, str) or ":" not in ref or tool.get("trusted") is True:
            return
        problem = pyrefs.ref_problem(ref)
        if problem is not None:
            self.report(
                ("tools", name, "ref"),
                f"refused ref `{ref}`: {problem}",
                "name a function of your own package, or mark the tool `trusted: true` "
                "if a person vouches for it",
            )

    def check_providers(self) -> None:
        defaults = as_mapping(self.data.get("defaults"))
        models = [defaults.get("model", "openai/gpt-4o-mini")]
        for agent in self.agents.values():
            agent = as_mapping(agent)
            models.append(agent.get("model"))
            models.extend(as_strings(agent.get("fallbacks")))
        prefixes = {
            model.split("/", 1)[0] for model in models if isinstance(model, str) and "/" in model
        }
        for name in as_mapping(self.data.get("providers")):
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
            spec = as_mapping(spec)
            kind = spec.get("type", "string")
            default = spec.get("default")
            known = isinstance(kind, str) and kind in JSON_TYPES
            if default is not None and known and not is_json_type(default, kind):
                self.report(("inputs", name, "default"), f"the default is not of type {kind}")
            enum = spec.get("enum")
            if isinstance(enum, list) and default is not None and default not in enum:
                self.report(("inputs", name, "default"), "the default is not one of `enum`")

    # -- schedule ----------------------------------------------------------------------------------
    def check_memory(self) -> None:
        scopes = as_mapping(as_mapping(self.data.get("memory")).get("scopes"))
        for name in scopes:
            if name not in self.agents:
                self.report(
                    ("memory", "scopes", name),
                    f"a scope for `{name}`, which is not an agent",
                    choices_hint(str(name), set(self.agents), "agents"),
                    key=True,
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


def check_references(source: Source, *, check_workspace: bool = True) -> list[Issue]:
    return Checker(source, check_workspace=check_workspace).run()
