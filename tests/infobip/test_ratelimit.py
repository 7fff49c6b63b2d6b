"""RateBudget: paced starts, pauses on 429, one budget per account."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from moments_pipeline.infobip import MomentsClientConfig, RateBudget, rate_budget_for

from .support import VirtualClock


async def test_starts_are_paced_not_burst() -> None:
    clock = VirtualClock()
    budget = RateBudget(10, clock=clock, sleep=clock.sleep)
    starts: list[float] = []

    async def one() -> None:
        await budget.acquire()
        starts.append(clock())

    await asyncio.gather(*(one() for _ in range(25)))
    starts.sort()
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) == pytest.approx(0.1)
    # No sliding one-second window holds more than 10 starts.
    assert max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts) == 10


async def test_safety_margin_widens_the_interval() -> None:
    budget = RateBudget(10, safety_margin=0.02)
    assert budget.interval_s == pytest.approx(0.102)


async def test_pause_holds_every_caller() -> None:
    clock = VirtualClock()
    budget = RateBudget(10, clock=clock, sleep=clock.sleep)
    await budget.acquire()
    budget.pause(2.0)
    paused_at = clock()
    await budget.acquire()
    assert clock() - paused_at == pytest.approx(2.0)
    assert budget.pauses == 1


def test_one_budget_per_account_and_never_keyed_by_the_key() -> None:
    a = MomentsClientConfig(base_url="https://ratelimit-a.api.infobip.com", api_key="key-one-123")
    a2 = MomentsClientConfig(
        base_url="https://ratelimit-a.api.infobip.com", api_key="key-one-123", rate_per_s=5
    )
    b = MomentsClientConfig(base_url="https://ratelimit-a.api.infobip.com", api_key="key-two-456")
    assert rate_budget_for(a) is rate_budget_for(a2)
    assert rate_budget_for(a) is not rate_budget_for(b)
    # The slower client slowed the shared budget down.
    assert rate_budget_for(a).interval_s >= 0.2
    from moments_pipeline.infobip import _ratelimit

    assert all("key-one-123" not in k for k in _ratelimit._REGISTRY)


async def test_late_start_is_caught_up_gently_never_in_a_burst() -> None:
    clock = VirtualClock()
    budget = RateBudget(10, clock=clock, sleep=clock.sleep)
    starts: list[float] = []
    for i in range(40):
        await budget.acquire()
        starts.append(clock())
        if i == 12:
            clock.now += 0.35  # the caller stalled (event loop busy, GC pause)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.08 - 1e-9  # never closer than 0.8 interval
    # Any 10 consecutive starts span at least 10 intervals...
    assert min(starts[i + 10] - starts[i] for i in range(len(starts) - 10)) >= 1.0 - 1e-9
    # ...and the stall was partly caught up: the last starts are back on the 0.1 s cadence.
    assert gaps[-1] == pytest.approx(0.1)
    assert starts[-1] - starts[0] < 39 * 0.1 + 0.35


async def test_idle_budget_restarts_without_a_burst() -> None:
    clock = VirtualClock()
    budget = RateBudget(10, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        await budget.acquire()
    clock.now += 30
    t0 = clock()
    starts = []
    for _ in range(3):
        await budget.acquire()
        starts.append(clock() - t0)
    assert starts == pytest.approx([0.0, 0.1, 0.2])
