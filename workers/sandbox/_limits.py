"""Per-IP limits like BloFin's: REST requests per minute, new WebSocket connections per second."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class RestLimiter:
    """At most `per_min` requests per IP in any 60 s window (<= 0 disables)."""

    def __init__(self, per_min: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_min = per_min
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}

    def allow(self, ip: str) -> bool:
        if self.per_min <= 0:
            return True
        now = self._clock()
        seen = self._seen.setdefault(ip, deque())
        while seen and seen[0] <= now - 60.0:
            seen.popleft()
        if len(seen) >= self.per_min:
            return False
        seen.append(now)
        return True


class ConnLimiter:
    """A token bucket per IP: `per_sec` new connections a second, burst of max(1, per_sec)
    (<= 0 disables)."""

    def __init__(self, per_sec: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_sec = per_sec
        self._clock = clock
        self._burst = max(1.0, per_sec)
        self._buckets: dict[str, tuple[float, float]] = {}  # ip -> (tokens, at)

    def allow(self, ip: str) -> bool:
        if self.per_sec <= 0:
            return True
        now = self._clock()
        tokens, at = self._buckets.get(ip, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self.per_sec)
        if tokens < 1.0:
            self._buckets[ip] = (tokens, now)
            return False
        self._buckets[ip] = (tokens - 1.0, now)
        return True
