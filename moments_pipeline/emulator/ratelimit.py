"""Per-account rate limit of the Moments operations (spec: 10 requests/s per account).

Reading chosen: a sliding-window log. A request is admitted when fewer than ``N`` requests of
the same account were admitted in the preceding ``window`` seconds, where
``window = N / rate - jitter`` (0.95 s for 10/s with the default 50 ms tolerance). A client
pacing requests exactly ``1/rate`` apart therefore never sees a 429, even when each request
arrives a few milliseconds early or late, while 11 requests inside one second are refused.
Refused requests do not count. ``Retry-After`` is the whole number of seconds (at least 1)
until the oldest admitted request leaves the window.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["RateLimiter"]


class RateLimiter:
    """Sliding-window limiter keyed by account.

    Args:
        rate_per_s: Admitted requests per second.
        jitter_ms: Tolerance subtracted from the window.
    """

    def __init__(self, rate_per_s: float, jitter_ms: float = 50.0) -> None:
        self.capacity = max(1, math.floor(rate_per_s))
        self.window_s = max(0.001, self.capacity / rate_per_s - jitter_ms / 1000.0)
        self._admitted: dict[str, deque[float]] = {}

    def admit(self, account: str, now: float) -> int | None:
        """Admit a request at ``now``; return None if admitted, else Retry-After seconds."""
        times = self._admitted.get(account)
        if times is None:
            times = self._admitted[account] = deque()
        horizon = now - self.window_s
        while times and times[0] <= horizon:
            times.popleft()
        if len(times) < self.capacity:
            times.append(now)
            return None
        return max(1, math.ceil(times[0] + self.window_s - now))

    def reset(self) -> None:
        """Forget every admitted request."""
        self._admitted.clear()
