"""Requests-per-minute limits per provider (`providers: {openai: {rpm: 60}}` in a spec).

A sliding-window log: a request may start when fewer than `limit` requests started in the last
`window` seconds; otherwise its thread sleeps until the oldest of them leaves the window. So no
`window`-long interval ever holds more than `limit` starts — a token bucket would allow a burst
of `limit` at the end of one minute and another at the start of the next.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping


class RateLimiter:
    """At most `limit` acquisitions in any `window` seconds. Thread-safe; waits outside its lock."""

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        if window <= 0:
            raise ValueError(f"window must be > 0, got {window}")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._starts: deque[float] = deque()  # start times inside the current window, oldest first

    def acquire(self) -> float:
        """Block until a request may start, count it as started; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                # [t, t + window) is one window: a start exactly `window` ago no longer counts.
                # (Compared as start + window, the same sum as the wait below: that is then > 0.)
                while self._starts and self._starts[0] + self.window <= now:
                    self._starts.popleft()
                if len(self._starts) < self.limit:
                    self._starts.append(now)
                    return waited
                wait = self._starts[0] + self.window - now
            # Another thread may take the freed slot first: then this one checks again.
            self._sleep(wait)
            waited += wait


class RateLimits:
    """One RateLimiter per provider prefix (the part of a model string before its first `/`)."""

    def __init__(
        self,
        rpm: Mapping[str, int] | None = None,
        window: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        shared = clock is time.monotonic and sleep is time.sleep
        self._limiters = {
            prefix: _shared(prefix, limit, window)
            if shared
            else RateLimiter(limit, window, clock=clock, sleep=sleep)
            for prefix, limit in (rpm or {}).items()
        }

    def __bool__(self) -> bool:
        return bool(self._limiters)

    def for_model(self, model: str) -> RateLimiter | None:
        prefix, slash, _ = model.partition("/")
        return self._limiters.get(prefix) if slash else None

    def acquire(self, model: str) -> float:
        """Wait for the model's provider, if it has a limit; return the seconds waited."""
        limiter = self.for_model(model)
        return limiter.acquire() if limiter is not None else 0.0


# One limiter per (provider, limit, window) for the whole process: every run in it (several
# applies from the Python API, say) draws from the same requests-per-minute allowance.
_SHARED_LOCK = threading.Lock()
_SHARED: dict[tuple[str, int, float], RateLimiter] = {}


def _shared(prefix: str, limit: int, window: float) -> RateLimiter:
    with _SHARED_LOCK:
        key = (prefix, limit, window)
        if key not in _SHARED:
            _SHARED[key] = RateLimiter(limit, window)
        return _SHARED[key]
