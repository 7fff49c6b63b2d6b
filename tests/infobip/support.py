"""Test helpers of the client tests: a virtual clock and secrets used across them."""

from __future__ import annotations

import asyncio

API_KEY = "client-tests-secret-key-7f3a9c1e5b"


class VirtualClock:
    """A monotonic clock that only moves when something sleeps on it.

    Every sleep is recorded, so tests can assert on backoff and pacing without waiting.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._targets: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Wake when every other sleeper due earlier has woken (a discrete-event clock)."""
        self.sleeps.append(seconds)
        target = self.now + max(0.0, seconds)
        self._targets.append(target)
        try:
            while True:
                # Let every runnable task run until it blocks, then wake the earliest sleeper.
                for _ in range(3):
                    await asyncio.sleep(0)
                if target <= min(self._targets):
                    break
        finally:
            self._targets.remove(target)
        self.now = max(self.now, target)
