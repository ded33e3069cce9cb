"""The gateway's verbs — validate, plan, apply, status, cancel, approve, runs — as JSON-able
answers, shared by the MCP server and the HTTP API so both say and allow exactly the same.

What a client may choose is narrow on purpose: a spec *by name* from the server's spec dir
(text only to validate or plan), its declared inputs, gates approved ahead, `fresh`, and a
workspace beneath the server's `--workspace` root. Budgets, limits, models, tools and the
sandbox are the spec's and the operator's; nothing here widens them.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codexflow.errors import Issue, SpecError
from codexflow.gateway.runs import GatewayError, RunManager
from codexflow.spec import Spec, load_spec, load_spec_text
from codexflow.spec.yaml_source import MAX_BYTES

MAX_INPUT_DEPTH = 32  # nesting of one input's JSON value (deeper: refused, not a RecursionError)
SPEC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
RUN_ID = re.compile(r"^\d{8}-\d{6}\.\d{3}-[0-9a-f]{6}$")
MAX_LISTED_RUNS = 100


def check_inputs(spec: Spec, inputs: dict[str, Any] | None) -> dict[str, Any]:
    """JSON input values: of their declared type (a string is parsed to it, as `--set` values
    are) and of bounded depth. Unknown names are left to the compiler (did-you-mean)."""
    from codexflow.spec.models import is_json_type

    problems = []
    for name, value in (inputs or {}).items():
        if _depth(value) > MAX_INPUT_DEPTH:
            problems.append(
                Issue("inputs", 0, 0, name, f"nested deeper than {MAX_INPUT_DEPTH} levels")
            )
            continue
        declared = spec.inputs.get(name)
        if (
            declared is not None
            and not isinstance(value, str)
            and not is_json_type(value, declared.type)
        ):
            kind = type(value).__name__
            problems.append(Issue("inputs", 0, 0, name, f"expected {declared.type}, got {kind}"))
    if problems:
        raise SpecError(problems)
    return dict(inputs or {})


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_INPUT_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def issue_view(issue: Issue) -> dict[str, Any]:
    data = issue.to_dict()
    data["text"] = issue.render()  # `file:line:col: where: what (how to fix)`
    return data


@dataclass
class Gateway:
    """One server's verbs over its spec dir, state dir and workspace root."""

    spec_dir: Path
    manager: RunManager
    workspace_root: Path | None = None
    model: str | None = None  # the operator's `--model` for every run (e.g. scripted/demo)

    # -- specs ------------------------------------------------------------------------------
    def spec_names(self) -> list[str]:
        if not self.spec_dir.is_dir():
            return []
        found = {
            path.stem
            for pattern in ("*.yaml", "*.yml")
            for path in self.spec_dir.glob(pattern)
            if path.is_file() and SPEC_NAME.match(path.stem)
        }
        return sorted(found)

    def spec_path(self, name: str) -> Path:
        """The file of spec `name` (no directories, no escape from the spec dir)."""
        stem = name.removesuffix(".yaml").removesuffix(".yml")
        if not SPEC_NAME.match(stem):
            raise GatewayError(
                "invalid",
                f"`{name[:100]}` is not a spec name (letters, digits, `.`, `_`, `-`; no paths)",
            )
        root = self.spec_dir.resolve()
        for suffix in (".yaml", ".yml"):
            path = (root / f"{stem}{suffix}").resolve()
            if path.parent == root and path.is_file():
                return path
        close = difflib.get_close_matches(stem, self.spec_names(), n=1)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        raise GatewayError("not_found", f"no spec `{stem}` in the spec dir{hint}")

    def specs(self) -> list[dict[str, Any]]:
        listed = []
        for name in self.spec_names():
            entry: dict[str, Any] = {"name": name, "uri": f"codexflow://specs/{name}"}
            try:
                spec = load_spec(self.spec_path(name))
                entry.update(valid=True, description=spec.description or "", plan=spec.name)
            except SpecError as error:
                entry.update(valid=False, issues=len(error.issues))
            listed.append(entry)
        return listed

    def spec_text(self, name: str) -> str:
        return self.spec_path(name).read_text(encoding="utf-8")

    def _load(self, text: str | None, spec: str | None) -> tuple[Spec, Path | None]:
        if (text is None) == (spec is None):
            raise GatewayError("invalid", "give exactly one of `spec` (a name) and `text`")
        if text is not None:
            if len(text.encode("utf-8")) > MAX_BYTES:
                limit = MAX_BYTES // (1024 * 1024)
                raise GatewayError("invalid", f"spec text is limited to {limit} MiB")
            return load_spec_text(text, "<text>")[0], None
        assert spec is not None
        path = self.spec_path(spec)
        return load_spec(path), path

    # -- shared memory ----------------------------------------------------------------------
    def memory_get(self, spec: str, key: str) -> dict[str, Any]:
        """An entry of the spec's lasting memory (its namespace, as the spec's agents see it)."""
        memory = self._memory(spec)
        try:
            entry = memory.entry(key)
            namespace = memory.namespace
        finally:
            memory.close()
        found = entry is not None
        return {
            "spec": spec,
            "namespace": namespace,
            "key": key,
            "found": found,
            "value": entry.value if entry is not None else None,
        }

    def memory_search(self, spec: str, query: str, limit: int = 5) -> dict[str, Any]:
        """The entries of the spec's memory nearest in meaning to `query`, best first."""
        if len(query.encode("utf-8")) > 64 * 1024:
            raise GatewayError("invalid", "a memory query is limited to 64 KiB")
        memory = self._memory(spec)
        try:
            hits = memory.search(query, limit=max(1, min(int(limit), 50)))
            namespace = memory.namespace
        finally:
            memory.close()
        return {
            "spec": spec,
            "namespace": namespace,
            "hits": [{"key": h.key, "value": h.value, "score": round(h.score, 6)} for h in hits],
        }

    def _memory(self, spec: str) -> Any:
        """The spec's memory, where its runs under this server keep it (the spec's own
        `memory:` settings, its state subdirectory by default). Read as a client: no agent."""
        from codexflow.memory import Memory, config_from_spec

        path = self.spec_path(spec)
        state = self.manager.state_dir_for(path.stem)
        return Memory(config_from_spec(load_spec(path), state, base=path.parent))

    # -- validate and plan ------------------------------------------------------------------
    def validate(self, text: str | None = None, spec: str | None = None) -> dict[str, Any]:
        try:
            loaded, _ = self._load(text, spec)
        except SpecError as error:
            return {"valid": False, "issues": [issue_view(i) for i in error.issues]}
        return {"valid": True, "name": loaded.name, "issues": []}

    def plan(
        self,
        text: str | None = None,
        spec: str | None = None,
        inputs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The compiled plan (`codexflow plan -f json`): steps, edges, cached steps, cost range."""
        from codexflow.api import compile, with_model
        from codexflow.compiler.estimate import estimate_plan
        from codexflow.compiler.render import plan_to_dict
        from codexflow.providers.price_table import model_prices

        loaded, _ = self._load(text, spec)
        if self.model:
            loaded = with_model(loaded, self.model)
        plan = compile(loaded, check_inputs(loaded, inputs))
        cached = None
        if spec is not None:
            state = self.manager.state_dir_for(self.spec_path(spec).stem)
            if (state / "results").is_dir():  # runtime.store.RESULTS_DIR
                from codexflow.runtime import cache_status

                cached = cache_status(plan, state)
        data = plan_to_dict(plan, estimate_plan(plan, model_prices, cached), cached)
        # The plan's own types (sets, tuples) as plain JSON.
        result: dict[str, Any] = json.loads(json.dumps(data, default=list))
        return result

    # -- runs -------------------------------------------------------------------------------
    def apply(
        self,
        spec: str,
        inputs: dict[str, Any] | None = None,
        approve: list[str] | None = None,
        fresh: bool = False,
        workspace: str | None = None,
    ) -> dict[str, Any]:
        """Check the spec and inputs now (errors come back at once), then start the run."""
        from codexflow.api import ApplyOptions, compile, resolve_workspace, with_model

        path = self.spec_path(spec)
        loaded = load_spec(path)
        if self.model:
            loaded = with_model(loaded, self.model)
        inputs = check_inputs(loaded, inputs)
        plan = compile(loaded, inputs)
        override = self._workspace(workspace)
        resolve_workspace(loaded, path, override)  # a missing workspace is refused now
        script = self.spec_dir / "scripted" / f"{path.stem}.yaml"
        options = ApplyOptions(
            inputs=inputs,
            model=self.model,
            script=script if script.is_file() else None,
            workspace=override,
            fresh=fresh,
            approve=frozenset(name.strip() for name in approve or [] if name.strip()),
        )
        run = self.manager.start(path.stem, path, len(plan.steps), options)
        return run.view(outputs=False)

    def _workspace(self, requested: str | None) -> Path | None:
        root = self.workspace_root
        if root is None:
            if requested:
                raise GatewayError(
                    "forbidden",
                    "this server was started without --workspace: runs use their spec's own "
                    "workspace, and a client cannot choose another",
                )
            return None
        root = root.resolve()
        chosen = (root / (requested or "")).resolve()
        if not chosen.is_relative_to(root):
            raise GatewayError(
                "forbidden", f"the workspace must be beneath the server's workspace root {root}"
            )
        if not chosen.is_dir():
            raise GatewayError("not_found", f"no directory `{requested}` in the workspace root")
        return chosen

    def status(self, run_id: str, outputs: bool = True) -> dict[str, Any]:
        return self.manager.get(run_id).view(outputs=outputs)

    def cancel(self, run_id: str) -> dict[str, Any]:
        return self.manager.cancel(run_id).view(outputs=False)

    def approve(
        self, run_id: str, gate: str, approved: bool = True, limit: float | None = None
    ) -> dict[str, Any]:
        question = self.manager.answer(run_id, gate, approved, limit)
        return {"run_id": run_id, "answered": question.view(), "approved": approved}

    def runs(self) -> list[dict[str, Any]]:
        """This server's runs (newest first), then older ones recorded under the state dir."""
        listed = [run.view(outputs=False) for run in self.manager.list()]
        seen = {entry["run_id"] for entry in listed}
        for path in sorted(
            self.manager.state_dir.glob("specs/*/runs/*/summary.json"),
            key=lambda p: p.parent.name,
            reverse=True,
        ):
            if len(listed) >= MAX_LISTED_RUNS:
                break
            if path.parent.name in seen:
                continue
            try:
                summary = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            totals = summary.get("totals", {})
            listed.append(
                {
                    "run_id": summary.get("run_id", path.parent.name),
                    "spec": path.parents[2].name,
                    "state": summary.get("status", ""),
                    "final": True,
                    "reason": summary.get("reason", ""),
                    "steps_total": totals.get("steps", 0),
                    "steps_done": totals.get("steps", 0),
                    "spent": {
                        "tokens": totals.get("spent_tokens", 0),
                        "usd": totals.get("spent_usd", 0.0),
                    },
                }
            )
        return listed

    def report(self, run_id: str) -> str:
        """A finished run's report.md."""
        if not RUN_ID.match(run_id):
            raise GatewayError("not_found", f"no run `{run_id[:60]}`")
        try:
            run = self.manager.get(run_id)
            candidates = [run.run_dir] if run.run_dir else []
        except GatewayError:
            candidates = list(self.manager.state_dir.glob(f"specs/*/runs/{run_id}"))
        for directory in candidates:
            report = directory / "report.md"
            if report.is_file():
                return report.read_text(encoding="utf-8")
        raise GatewayError("not_found", f"run `{run_id}` has no report (yet)")
