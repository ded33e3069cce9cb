"""Token and cost accounting per step and per run, with an optional budget checked before each call."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from ..errors import BudgetExceeded
from .types import Usage


@dataclass(frozen=True)
class Spend:
    """What some calls consumed; `cost_known` is False if any of them had an unknown price."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, usage: Usage, cost_usd: float, cost_known: bool) -> Spend:
        return replace(
            self,
            calls=self.calls + 1,
            prompt_tokens=self.prompt_tokens + usage.prompt_tokens,
            completion_tokens=self.completion_tokens + usage.completion_tokens,
            cost_usd=self.cost_usd + cost_usd,
            cost_known=self.cost_known and cost_known,
        )


_EPSILON = 1e-9  # USD


class Ledger:
    """Thread-safe accounts of one run. A budget limit stops the next call, never a finished one."""

    def __init__(self, max_usd: float | None = None, max_tokens: int | None = None) -> None:
        self.max_usd = max_usd
        self.max_tokens = max_tokens
        self._lock = threading.Lock()
        self._total = Spend()
        self._steps: dict[str, Spend] = {}
        self._models: dict[str, Spend] = {}

    def charge(
        self, step: str, model: str, usage: Usage, cost_usd: float, *, cost_known: bool = True
    ) -> None:
        """Book one finished call."""
        with self._lock:
            self._total = self._total.add(usage, cost_usd, cost_known)
            self._steps[step] = self._steps.get(step, Spend()).add(usage, cost_usd, cost_known)
            self._models[model] = self._models.get(model, Spend()).add(usage, cost_usd, cost_known)

    @property
    def limited(self) -> bool:
        """Has a budget at all (callers skip estimating the next call when not)."""
        return self.max_usd is not None or self.max_tokens is not None

    def check_before_call(self, step: str, *, next_tokens: int = 0, next_usd: float = 0.0) -> None:
        """Raise BudgetExceeded if the run reached a limit, or if the next call's estimate would pass it.

        The estimate covers the prompt only (its tokens and input price): the answer's length is
        unknown before the call, so a call may still end a little past the limit.
        """
        with self._lock:
            spent = self._total
        # A run that spent exactly its limit is done even when the next estimate is 0; the
        # epsilon keeps float sums such as 0.009 + 0.001 from slipping under the limit.
        if self.max_tokens is not None and (
            spent.total_tokens + next_tokens > self.max_tokens
            or spent.total_tokens >= self.max_tokens
        ):
            raise BudgetExceeded(
                _message(
                    step,
                    f"{spent.total_tokens:,} tokens",
                    f"{self.max_tokens:,} tokens",
                    f"{next_tokens:,} tokens",
                ),
                limit_kind="tokens",
                spent=spent.total_tokens,
                limit=self.max_tokens,
            )
        if self.max_usd is not None and (
            spent.cost_usd + next_usd > self.max_usd + _EPSILON
            or spent.cost_usd >= self.max_usd - _EPSILON
        ):
            raise BudgetExceeded(
                _message(
                    step, f"${spent.cost_usd:.4f}", f"${self.max_usd:.4f}", f"${next_usd:.4f}"
                ),
                limit_kind="usd",
                spent=spent.cost_usd,
                limit=self.max_usd,
            )

    def raise_limit(self, limit_kind: str, new_limit: float) -> None:
        """A person allowed more: lift the limit that was reached ("usd" or "tokens")."""
        with self._lock:
            if limit_kind == "tokens":
                self.max_tokens = int(new_limit)
            else:
                self.max_usd = float(new_limit)

    def totals(self) -> Spend:
        with self._lock:
            return self._total

    def per_step(self) -> dict[str, Spend]:
        with self._lock:
            return dict(self._steps)

    def per_model(self) -> dict[str, Spend]:
        with self._lock:
            return dict(self._models)


def _message(step: str, spent: str, limit: str, estimate: str) -> str:
    return (
        f"budget exceeded before step '{step}': the run has spent {spent} of its "
        f"limit of {limit}, and the next call needs about {estimate} more"
    )
