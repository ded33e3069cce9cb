"""Checks of what would otherwise fail only once a run has paid for something: models and
providers litellm does not know, shell placeholders inside words, `for_each` over a value that
cannot be a list, and a workspace that does not exist."""

from __future__ import annotations

import difflib
import re
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Any

from codexflow.spec import catalog, templates
from codexflow.spec.task_checks import as_mapping, as_strings
from codexflow.spec.yaml_source import Path, Source

if TYPE_CHECKING:
    from codexflow.errors import Severity

_WHOLE_PLACEHOLDER = re.compile(r"^\{\{\s*[A-Za-z_][A-Za-z0-9_-]*\s*\}\}$")
_CHAIN = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_][\w-]*)*$")


def closest(word: str, choices: list[str] | set[str] | frozenset[str], n: int = 3) -> str:
    """`closest known: 'a', 'b'` or an empty string."""
    found = difflib.get_close_matches(word, sorted(choices), n=n, cutoff=0.6)
    return ", ".join(f"'{m}'" for m in found)


class PreflightChecks:
    """A half of the Checker (checks.py), which provides the sections and `report`."""

    source: Source
    data: dict[str, Any]
    agents: dict[str, Any]
    tasks: dict[str, Any]
    tools: dict[str, Any]
    inputs: dict[str, Any]
    check_workspace_exists: bool

    if TYPE_CHECKING:

        def report(
            self,
            path: Path,
            message: str,
            hint: str = "",
            *,
            key: bool = False,
            line_offset: int = 0,
            severity: Severity = "error",
        ) -> None: ...

    def run_preflight(self) -> None:
        self.check_models()
        self.check_shell_words()
        self.check_for_each_types()
        if self.check_workspace_exists:
            self.check_workspace()

    # -- models ----------------------------------------------------------------------------
    def model_paths(self) -> list[tuple[Path, str]]:
        found: list[tuple[Path, str]] = []
        defaults = as_mapping(self.data.get("defaults"))
        if isinstance(defaults.get("model"), str):
            found.append((("defaults", "model"), defaults["model"]))
        for name, agent in self.agents.items():
            agent = as_mapping(agent)
            if isinstance(agent.get("model"), str):
                found.append((("agents", name, "model"), agent["model"]))
            fallbacks = agent.get("fallbacks")
            for index, model in enumerate(fallbacks if isinstance(fallbacks, list) else []):
                if isinstance(model, str):
                    found.append((("agents", name, "fallbacks", index), model))
        return found

    def check_models(self) -> None:
        """Warnings: litellm's tables may lag behind a provider, so these never block a run."""
        providers = catalog.known_providers()
        if not providers:
            return  # litellm is not installed here: nothing to compare with
        declared = as_mapping(self.data.get("providers"))
        for path, model in self.model_paths():
            if "/" not in model:
                continue  # bare names are litellm's to resolve (gpt-4o-mini)
            prefix, name = model.split("/", 1)
            if prefix in catalog.OWN_PREFIXES:
                continue
            if prefix not in providers:
                near = closest(prefix, providers)
                self.report(
                    path,
                    f"`{prefix}` is not a provider litellm knows, so no call to `{model}` can "
                    "succeed (litellm: 'LLM Provider NOT provided')",
                    (f"closest known: {near}" if near else "see docs.litellm.ai/docs/providers")
                    + "; an OpenAI-compatible server is `openai/<model>` with "
                    "`providers.openai.api_base`",
                    severity="warning",
                )
                continue
            if prefix not in catalog.CATALOGUED or as_mapping(declared.get(prefix)).get("api_base"):
                continue  # any model name may be served there
            if catalog.table_entry(model) is None:
                near = closest(name, catalog.models_of(prefix))
                self.report(
                    path,
                    f"litellm does not know the model `{name}` of `{prefix}` (its price is "
                    "unknown too)",
                    f"closest known: {near}" if near else "check the model's name",
                    severity="warning",
                )

    # -- shell tools -----------------------------------------------------------------------
    def check_shell_words(self) -> None:
        for name, tool in self.tools.items():
            tool = as_mapping(tool)
            if tool.get("kind") != "shell":
                continue
            command = tool.get("command")
            if isinstance(command, str):
                try:
                    words = templates.split_command(command)
                except ValueError:
                    continue  # reported by check_tools
            else:
                words = as_strings(command)
            for word in words:
                if "{{" in word and not _WHOLE_PLACEHOLDER.match(word):
                    self.report(
                        ("tools", name, "command"),
                        f"the placeholder in `{word}` must be a whole argv word: a model's "
                        "argument is never spliced into a word",
                        "make it a word of its own, e.g. `{{ range }}`, and let the argument "
                        "carry the rest: `abc..HEAD`",
                    )

    # -- for_each --------------------------------------------------------------------------
    def check_for_each_types(self) -> None:
        for name, task in self.tasks.items():
            text = as_mapping(task).get("for_each")
            if not isinstance(text, str):
                continue
            expression = templates.single_expression(text)
            if expression is None or not _CHAIN.match(expression):
                continue  # reported elsewhere, or computed: known only at run time
            problem = self.not_a_list(expression.split("."))
            if problem:
                message, hint = problem
                self.report(("tasks", name, "for_each"), message, hint)

    def not_a_list(self, chain: list[str]) -> tuple[str, str] | None:
        """Why the value at `chain` cannot be a list, or None when it can (or may) be."""
        shown = ".".join(chain)
        if chain[0] == "inputs" and len(chain) == 2 and chain[1] in self.inputs:
            kind = as_mapping(self.inputs[chain[1]]).get("type", "string")
            if kind != "array":
                return (
                    f"`for_each` goes over `{shown}`, which is declared `type: {kind}`, not a list",
                    f"declare `inputs.{chain[1]}.type: array`",
                )
            return None
        if chain[0] != "tasks" or len(chain) < 3 or chain[2] != "output":
            return None
        upstream = as_mapping(self.tasks.get(chain[1]))
        if not upstream:
            return None  # an unknown task: reported by the template checks
        schema = upstream.get("output")
        if schema is None:
            return (
                f"`for_each` goes over `{shown}`, but task `{chain[1]}` has no `output` "
                "schema: its answer is text, not a list",
                f"give `tasks.{chain[1]}` an `output:` schema with an array "
                "(e.g. `{type: object, properties: {units: {type: array}}}`)",
            )
        node: Any = schema
        for part in chain[3:]:
            node = as_mapping(as_mapping(node).get("properties")).get(part)
            if node is None:
                return None  # not described: the schema allows it, so it may be a list
        kind = as_mapping(node).get("type")
        if isinstance(kind, str) and kind != "array":
            return (
                f"`for_each` goes over `{shown}`, which the output schema of "
                f"`{chain[1]}` declares `type: {kind}`, not a list",
                "make it `type: array`, or go over an array field of it",
            )
        return None

    # -- workspace -------------------------------------------------------------------------
    def check_workspace(self) -> None:
        workspace = self.data.get("workspace", ".")
        spec_file = FilePath(self.source.path)
        if not isinstance(workspace, str) or not spec_file.is_file():
            return  # text loaded from memory: nothing to resolve against
        resolved = (spec_file.resolve().parent / workspace).resolve()
        if not resolved.is_dir():
            what = "is not a directory" if resolved.exists() else "does not exist"
            self.report(
                ("workspace",),
                f"the workspace `{workspace}` {what} (paths are relative to the spec's directory)",
                "create it, fix the path, or give `apply --workspace DIR`",
            )
