"""A thread-safe sliding-window rate limiter shared by the whole process.

NCBI counts requests per API key or per IP across every thread of a client, so one limiter per
(service, key) is shared process-wide: two clients in one process never add up to more than
the limit. (Bio.Entrez keeps one unlocked module-global timestamp, which threads can race past.)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable


class RateLimiter:
    """At most `rate` acquisitions in any window of `period` seconds (plus a safety margin)."""

    def __init__(self, rate: float, period: float = 1.0, margin: float = 0.05,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.capacity = max(1, int(rate))
        self.period = period * self.capacity / rate + margin
        self._recent: deque[float] = deque()
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def acquire(self) -> float:
        """Block until a request may go out; return the seconds waited."""
        waited = 0.0
        # Holding the lock while sleeping is deliberate: callers queue up in order.
        with self._lock:
            while True:
                now = self._clock()
                while self._recent and now - self._recent[0] >= self.period:
                    self._recent.popleft()
                if len(self._recent) < self.capacity:
                    self._recent.append(now)
                    return waited
                pause = self.period - (now - self._recent[0])
                self._sleep(pause)
                waited += pause


_shared: dict[tuple[str, float], RateLimiter] = {}
_shared_lock = threading.Lock()


def shared_limiter(key: str, rate: float) -> RateLimiter:
    """The process-wide limiter for `key` (e.g. a host plus API key) at `rate` per second."""
    with _shared_lock:
        limiter = _shared.get((key, rate))
        if limiter is None:
            limiter = _shared[(key, rate)] = RateLimiter(rate)
        return limiter
