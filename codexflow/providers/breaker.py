"""Circuit breakers per model, so that a dead provider fails fast instead of being hammered."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """closed → open after `threshold` consecutive transient failures → half-open after `cooldown`
    (one probe request is let through) → closed on success, open again on failure."""

    def __init__(
        self,
        threshold: int = 5,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1:
            raise ValueError(f"threshold must be >= 1, got {threshold}")
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._state: State = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> State:
        with self._lock:
            self._refresh()
            return self._state

    def remaining_cooldown(self) -> float:
        with self._lock:
            if self._state != "open":
                return 0.0
            return max(0.0, self._opened_at + self.cooldown - self._clock())

    def allow(self) -> bool:
        """May a request go out now? In half-open only one probe at a time is let through."""
        with self._lock:
            self._refresh()
            if self._state == "closed":
                return True
            if self._state == "half_open" and not self._probing:
                self._probing = True
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            self._state, self._failures, self._probing = "closed", 0, False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._state == "half_open" or self._failures >= self.threshold:
                self._state, self._opened_at, self._probing = "open", self._clock(), False

    def _refresh(self) -> None:
        if self._state == "open" and self._clock() - self._opened_at >= self.cooldown:
            self._state, self._probing = "half_open", False


class Breakers:
    """One breaker per model string, created on first use with the same settings."""

    def __init__(
        self,
        threshold: int = 5,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._by_model: dict[str, CircuitBreaker] = {}

    def get(self, model: str) -> CircuitBreaker:
        with self._lock:
            breaker = self._by_model.get(model)
            if breaker is None:
                breaker = self._by_model[model] = CircuitBreaker(
                    self.threshold, self.cooldown, self._clock
                )
            return breaker
