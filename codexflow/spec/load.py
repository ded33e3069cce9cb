"""`load_spec`: read a spec file, validate it against the models, check it as a whole."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from codexflow.errors import Issue, SpecError
from codexflow.spec.checks import check_references
from codexflow.spec.diagnostics import issues_from_validation
from codexflow.spec.models import Spec
from codexflow.spec.yaml_source import MAX_BYTES, Source, YamlProblem, read_yaml


def load_spec(path: str | Path, *, check_workspace: bool = True) -> Spec:
    """Parse, validate and cross-check one spec file. Raises SpecError listing every problem.

    `check_workspace=False` skips the check that the spec's workspace exists (for a run given
    a workspace of its own)."""
    spec, _ = load_spec_source(path, check_workspace=check_workspace)
    return spec


def load_spec_source(path: str | Path, *, check_workspace: bool = True) -> tuple[Spec, Source]:
    shown = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise SpecError([Issue(shown, 1, 1, "", "no such file")]) from None
    except IsADirectoryError:
        raise SpecError([Issue(shown, 1, 1, "", "is a directory, not a spec file")]) from None
    except OSError as exc:
        raise SpecError([Issue(shown, 1, 1, "", f"cannot read: {exc.strerror}")]) from None
    if len(raw) > MAX_BYTES:
        size = Path(path).stat().st_size / (1024 * 1024)
        limit = MAX_BYTES // (1024 * 1024)
        raise SpecError(
            [
                Issue(
                    shown, 1, 1, "", f"the file is {size:.1f} MiB; specs are limited to {limit} MiB"
                )
            ]
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError([Issue(shown, line, 1, "", "not UTF-8 text")]) from None
    return load_spec_text(text, shown, check_workspace=check_workspace)


EXTENSION_PREFIX = "x-"


def without_extensions(data: dict[str, object]) -> dict[str, object]:
    """Top-level `x-…` keys are the user's own (e.g. YAML anchors to reuse), as in Compose files."""
    return {key: value for key, value in data.items() if not key.startswith(EXTENSION_PREFIX)}


def load_spec_text(
    text: str, path: str = "<string>", *, check_workspace: bool = True
) -> tuple[Spec, Source]:
    """Like load_spec, for text already in memory (`path` is only used in messages)."""
    try:
        source = read_yaml(text, path)
    except YamlProblem as problem:
        raise SpecError(problem.issues) from None
    if not isinstance(source.data, dict):
        kind = "a list" if isinstance(source.data, list) else "a single value"
        raise SpecError(
            [
                Issue(
                    path,
                    1,
                    1,
                    "",
                    f"a spec is a mapping of keys (apiVersion, name, agents, tasks, ...), not {kind}",
                )
            ]
        )
    issues: list[Issue] = []
    spec: Spec | None = None
    try:
        spec = Spec.model_validate(without_extensions(source.data))
    except ValidationError as error:
        issues.extend(issues_from_validation(error, source))
    issues.extend(check_references(source, check_workspace=check_workspace))
    if spec is None or any(issue.severity == "error" for issue in issues):
        raise SpecError(issues)
    source.warnings = SpecError(issues).issues  # sorted like errors
    return spec, source
