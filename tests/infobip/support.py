"""Test helpers of the client tests: a virtual clock and secrets used across them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

API_KEY = "client-tests-secret-key-7f3a9c1e5b"
CAMPAIGN_ID = 200000000000001  # the spec's example flow, seeded by the emulator
FORM_ID = "f23f0f7c-9898-4feb-8f21-5afe2c29db7e"  # the spec's example form


def participant(i: int, *, prefix: str = "4179") -> dict[str, Any]:
    """A distinct FlowParticipant dict (phone identifier, unique email and externalId)."""
    phone = f"{prefix}{i:07d}"
    return {
        "identifyBy": {"identifier": phone, "type": "PHONE"},
        "person": {
            "externalId": f"ext-{prefix}-{i}",
            "contactInformation": {
                "phone": [{"number": phone}],
                "email": [{"address": f"p{prefix}{i}@example.com"}],
            },
        },
    }


class VirtualClock:
    """A monotonic clock that only moves when something sleeps on it.

    Every sleep is recorded, so tests can assert on backoff and pacing without waiting.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._targets: list[float] = []
        # Called with the seconds by which the clock moved (e.g. to move the emulator's clock).
        self.listeners: list[Callable[[float], Any]] = []

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
        if target > self.now:
            moved, self.now = target - self.now, target
            for listener in self.listeners:
                listener(moved)
