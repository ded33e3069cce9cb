"""The two error roots of codexflow: the user's spec is wrong, or a run went wrong."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem in a spec file, located at `path:line:col` (1-based) and a dotted `loc`.

    A warning is printed but does not make the spec invalid (a model litellm may not know).
    """

    path: str
    line: int
    col: int
    loc: str
    message: str
    hint: str = ""
    severity: Severity = "error"

    @property
    def where(self) -> str:
        """`file:line:col`, or just the source's name for problems outside a file (`--set`)."""
        return f"{self.path}:{self.line}:{self.col}" if self.line > 0 else self.path

    def render(self) -> str:
        where = self.where + (": warning" if self.severity == "warning" else "")
        text = f"{where}: {self.loc}: {self.message}" if self.loc else f"{where}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "loc": self.loc,
            "message": self.message,
            "hint": self.hint,
            "severity": self.severity,
        }


class CodexflowError(Exception):
    """Base of every error codexflow raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SpecError(CodexflowError):
    """The user's spec is wrong. Carries every problem found, not just the first (exit 2)."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = sorted(issues, key=lambda i: (i.path, i.line, i.col, i.loc, i.message))
        super().__init__("\n".join(issue.render() for issue in self.issues))


class RunError(CodexflowError):
    """Execution went wrong: a provider, a tool, a budget (exit 1)."""


class ProviderError(RunError):
    """A model call failed for good (after the retries and fallbacks the spec allows)."""


class ToolError(RunError):
    """A tool could not do what was asked."""


class BudgetExceeded(RunError):
    """The next call would spend more than the run's budget allows.

    `limit_kind` says which limit was reached ("usd" or "tokens"), with what was spent and the
    limit in that unit, so that a person asked to raise the budget sees the right figures.
    """

    def __init__(
        self, message: str, *, limit_kind: str = "usd", spent: float = 0.0, limit: float = 0.0
    ) -> None:
        super().__init__(message)
        self.limit_kind = limit_kind
        self.spent = spent
        self.limit = limit
