"""Token and cost accounting per step and per run, with a budget that holds: each call in flight
reserves its worst case before it starts, and gives back what it did not use when it returns."""

from __future__ import annotations

import itertools
import math
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
# A call without a declared max_tokens is given at least this many completion tokens, or it
# does not start: an answer cut to a handful of tokens would be paid for and useless.
MIN_COMPLETION = 64
# The prompt's token count is an estimate (the provider's tokenizer may differ): reserve this
# many percent more than it, so that the worst case really is the worst case.
PROMPT_MARGIN_PERCENT = 10


def worst_prompt(tokens: int) -> int:
    """The prompt tokens a call reserves for a prompt counted at `tokens`."""
    return tokens + -(-tokens * PROMPT_MARGIN_PERCENT // 100)


_WAIT_SLICE = 0.5  # seconds between re-checks while a call waits for others to return


@dataclass(frozen=True)
class Reservation:
    """The worst case of one call in flight: its prompt and at most `completion_tokens` back.

    `completion_tokens` is what the call must be told as its `max_tokens` (None when no limit
    needs it) so that the provider itself cannot answer past the budget.
    """

    id: int
    step: str
    tokens: int
    usd: float
    completion_tokens: int | None


class Ledger:
    """Thread-safe accounts of one run. A budget limit stops the next call, never a finished one."""

    def __init__(self, max_usd: float | None = None, max_tokens: int | None = None) -> None:
        self.max_usd = max_usd
        self.max_tokens = max_tokens
        self._lock = threading.Lock()
        self._total = Spend()
        self._steps: dict[str, Spend] = {}
        self._models: dict[str, Spend] = {}
        self._changed = threading.Condition(self._lock)
        self._reserved: dict[int, Reservation] = {}
        self._ids = itertools.count(1)

    def charge(
        self, step: str, model: str, usage: Usage, cost_usd: float, *, cost_known: bool = True
    ) -> None:
        """Book one finished call."""
        with self._changed:
            self._total = self._total.add(usage, cost_usd, cost_known)
            self._steps[step] = self._steps.get(step, Spend()).add(usage, cost_usd, cost_known)
            self._models[model] = self._models.get(model, Spend()).add(usage, cost_usd, cost_known)
            self._changed.notify_all()

    def reserve(
        self,
        step: str,
        *,
        prompt_tokens: int,
        max_completion: int | None,
        prices: tuple[float, float] | None,
        stop: threading.Event | None = None,
    ) -> Reservation:
        """Reserve the worst case of the next call, waiting while calls in flight hold the room
        it needs; raise BudgetExceeded when the call could pass a limit even with nothing else
        in flight. `max_completion` is the call's declared bound (its max_tokens); without one
        the call gets what the budget has left. `prices` are USD per input and output token
        (None: unknown, so the USD limit cannot hold this call back)."""
        prompt = worst_prompt(prompt_tokens)
        with self._changed:
            while True:
                room = self._room(prompt, prices)
                in_flight = bool(self._reserved) and not (stop is not None and stop.is_set())
                completion: int | None
                if room is None:
                    completion = max_completion  # no limit applies to this call
                elif max_completion is not None and room >= max_completion:
                    completion = max_completion
                elif max_completion is None and room >= MIN_COMPLETION:
                    completion = room  # told to the provider: it cannot answer past it
                elif in_flight:
                    # Calls in flight may give back what they did not use: wait for them.
                    self._changed.wait(_WAIT_SLICE)
                    continue
                elif room >= min(MIN_COMPLETION, max_completion or MIN_COMPLETION):
                    completion = room  # less than declared, but all there is, and bounded
                else:
                    wanted = max_completion if max_completion is not None else MIN_COMPLETION
                    raise self._exceeded(step, prompt, min(wanted, MIN_COMPLETION), prices)
                grant = Reservation(
                    next(self._ids),
                    step,
                    prompt + (completion or 0),
                    _usd(prompt, completion or 0, prices),
                    completion,
                )
                self._reserved[grant.id] = grant
                return grant

    def release(self, reservation: Reservation) -> None:
        """The call ended (answered or not): its reserved room is free again."""
        with self._changed:
            self._reserved.pop(reservation.id, None)
            self._changed.notify_all()

    def _room(self, prompt: int, prices: tuple[float, float] | None) -> int | None:
        """Completion tokens the next call may still use (None: no limit applies to it)."""
        room: float | None = None
        reserved_tokens = sum(r.tokens for r in self._reserved.values())
        reserved_usd = sum(r.usd for r in self._reserved.values())
        if self.max_tokens is not None:
            room = self.max_tokens - self._total.total_tokens - reserved_tokens - prompt
        if self.max_usd is not None and prices is not None:
            left = self.max_usd - self._total.cost_usd - reserved_usd - prompt * prices[0]
            by_usd = left / prices[1] if prices[1] > 0 else (math.inf if left >= 0 else -1.0)
            room = by_usd if room is None else min(room, by_usd)
        if room is None or room == math.inf:
            return None
        return max(math.floor(room + _EPSILON), -1)

    def _exceeded(
        self, step: str, prompt: int, completion: int, prices: tuple[float, float] | None
    ) -> BudgetExceeded:
        spent = self._total
        if self.max_tokens is not None and (
            spent.total_tokens + prompt + completion > self.max_tokens
        ):
            return BudgetExceeded(
                _message(
                    step,
                    f"{spent.total_tokens:,} tokens",
                    f"{self.max_tokens:,} tokens",
                    f"{prompt + completion:,} tokens (its prompt and answer at worst)",
                ),
                limit_kind="tokens",
                spent=spent.total_tokens,
                limit=self.max_tokens,
            )
        assert self.max_usd is not None
        return BudgetExceeded(
            _message(
                step,
                f"${spent.cost_usd:.4f}",
                f"${self.max_usd:.4f}",
                f"${_usd(prompt, completion, prices):.4f} (its prompt and answer at worst)",
            ),
            limit_kind="usd",
            spent=spent.cost_usd,
            limit=self.max_usd,
        )

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
        with self._changed:
            if limit_kind == "tokens":
                self.max_tokens = int(new_limit)
            else:
                self.max_usd = float(new_limit)
            self._changed.notify_all()

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


def _usd(prompt: int, completion: int, prices: tuple[float, float] | None) -> float:
    return 0.0 if prices is None else prompt * prices[0] + completion * prices[1]
