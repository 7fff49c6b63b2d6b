"""One rate budget per Infobip account in the process, shared by every client and every call.

Infobip allows 10 requests/s per account and answers 429 above it. Bursting 10 requests at the
top of each second would collide with any window the server uses, so the budget paces request
STARTS: each caller reserves the next start slot, ``interval`` after the previous one, and sleeps
until it. A 429 pauses the whole budget (every client of the account) until ``Retry-After``.

Constraints: slots are reserved under a ``threading.Lock`` and never awaited under it, so one
budget works across event loops and threads (the sync facade runs its own loop). Budgets are
keyed by ``MomentsClientConfig.account_id`` (base URL + key fingerprint), never by the key.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

from ._config import MomentsClientConfig

__all__ = ["Clock", "RateBudget", "Sleep", "rate_budget_for"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateBudget:
    """Paces request starts at ``1 / rate_per_s`` (widened by a safety margin).

    Args:
        rate_per_s: Allowed requests per second.
        safety_margin: Fraction added to the interval (0.01 = 1 % slower than the limit).
        clock: Monotonic clock in seconds (injectable for tests).
        sleep: Async sleep (injectable for tests).
    """

    def __init__(
        self,
        rate_per_s: float,
        *,
        safety_margin: float = 0.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self._interval = (1.0 / rate_per_s) * (1.0 + safety_margin)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = float("-inf")
        self._paused_until = float("-inf")
        self.acquired = 0
        self.pauses = 0

    @property
    def interval_s(self) -> float:
        """Seconds between two request starts."""
        return self._interval

    def tighten(self, rate_per_s: float, safety_margin: float) -> None:
        """Lower the rate if another client of the account asks for a slower one."""
        interval = (1.0 / rate_per_s) * (1.0 + safety_margin)
        with self._lock:
            self._interval = max(self._interval, interval)

    def reserve(self) -> float:
        """Reserve the next start slot and return how long to wait for it (seconds)."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot, self._paused_until)
            self._next_slot = slot + self._interval
            self.acquired += 1
        return slot - now

    async def acquire(self) -> None:
        """Wait until this caller may start a request."""
        delay = self.reserve()
        if delay > 0:
            await self._sleep(delay)

    def pause(self, seconds: float) -> None:
        """Hold every start of the account for ``seconds`` (after a 429)."""
        with self._lock:
            until = self._clock() + max(0.0, seconds)
            if until > self._paused_until:
                self._paused_until = until
                self.pauses += 1


_REGISTRY: dict[str, RateBudget] = {}
_REGISTRY_LOCK = threading.Lock()


def rate_budget_for(config: MomentsClientConfig) -> RateBudget:
    """Return the process-wide budget of the config's account, creating it on first use.

    A later client asking for a slower rate slows the shared budget down; never up.
    """
    with _REGISTRY_LOCK:
        budget = _REGISTRY.get(config.account_id)
        if budget is None:
            budget = RateBudget(config.rate_per_s, safety_margin=config.rate_safety_margin)
            _REGISTRY[config.account_id] = budget
        else:
            budget.tighten(config.rate_per_s, config.rate_safety_margin)
        return budget
