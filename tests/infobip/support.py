"""Test helpers of the client tests: a virtual clock and secrets used across them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

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


def assert_no_secret(error: BaseException, secret: str = API_KEY) -> None:
    """The key appears in no str/repr/attribute of an error or of its causes."""
    seen: BaseException | None = error
    while seen is not None:
        texts = [str(seen), repr(seen), *(repr(v) for v in vars(seen).values())]
        assert not any(secret in text for text in texts), f"API key leaked by {type(seen)}"
        seen = seen.__cause__ or seen.__context__


@contextlib.contextmanager
def raises_clean(expected: type[BaseException]) -> Iterator[Any]:
    """``pytest.raises`` that also checks the raised error does not carry the API key."""
    with pytest.raises(expected) as info:
        yield info
    assert_no_secret(info.value)
