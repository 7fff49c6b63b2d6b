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
