"""RateBudget: paced starts, pauses on 429, one budget per account."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from moments_pipeline.emulator import Emulator, QueuedFault
from moments_pipeline.infobip import MomentsClient, MomentsClientConfig, RateBudget, rate_budget_for

from .support import CAMPAIGN_ID, VirtualClock, participant


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
    for _ in range(13):
        await budget.acquire()
        starts.append(clock() - t0)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # The first window after the pause goes out at the ceiling's spacing (6 %), then the
    # configured one again.
    assert starts[0] == 0.0
    assert gaps[:10] == pytest.approx([0.106] * 10)
    assert gaps[10:] == pytest.approx([0.1] * 2)


# --- adaptive spacing (AIMD on the safety margin) ------------------------------------------------


async def _start_times(budget: RateBudget, clock: VirtualClock, n: int) -> list[float]:
    starts = []
    for _ in range(n):
        await budget.acquire()
        starts.append(clock())
    return starts


async def test_a_429_widens_the_spacing_once_per_window_up_to_the_ceiling() -> None:
    clock = VirtualClock()
    budget = RateBudget(
        10,
        safety_margin=0.01,
        max_safety_margin=0.05,
        widen_step=0.015,
        clock=clock,
        sleep=clock.sleep,
    )
    assert budget.interval_s == pytest.approx(0.101)
    budget.note_rate_limited()
    assert budget.safety_margin == pytest.approx(0.025)
    # The other requests refused with it were paced by the old spacing: no further widening.
    clock.now += 0.3
    budget.note_rate_limited()
    budget.note_rate_limited()
    assert budget.safety_margin == pytest.approx(0.025) and budget.widenings == 1
    # A 429 a window later is new evidence.
    clock.now += 1.1
    budget.note_rate_limited()
    assert budget.safety_margin == pytest.approx(0.04)
    for _ in range(5):
        clock.now += 2.0
        budget.note_rate_limited()
    assert budget.safety_margin == pytest.approx(0.05)  # capped
    assert budget.interval_s == pytest.approx(0.105)
    # The starts follow the widened spacing.
    gaps = [b - a for a, b in itertools.pairwise(await _start_times(budget, clock, 12))]
    assert min(gaps) == pytest.approx(0.105)


async def test_a_clean_run_relaxes_the_margin_slowly_back_to_the_configured_one() -> None:
    clock = VirtualClock()
    budget = RateBudget(
        10,
        safety_margin=0.01,
        widen_step=0.02,
        relax_step=0.005,
        relax_after=50,
        clock=clock,
        sleep=clock.sleep,
    )
    budget.note_rate_limited()
    assert budget.safety_margin == pytest.approx(0.03)
    for _ in range(49):
        budget.note_accepted()
    assert budget.safety_margin == pytest.approx(0.03)  # not yet
    budget.note_accepted()
    assert budget.safety_margin == pytest.approx(0.025)
    # A 429 in the middle of a clean run restarts the count.
    for _ in range(30):
        budget.note_accepted()
    clock.now += 5
    budget.note_rate_limited()
    assert budget.safety_margin == pytest.approx(0.045)
    for _ in range(49):
        budget.note_accepted()
    assert budget.safety_margin == pytest.approx(0.045)
    for _ in range(50 * 20):
        budget.note_accepted()
    assert budget.safety_margin == pytest.approx(0.01)  # never below the configured margin
    assert budget.interval_s == pytest.approx(0.101)


async def test_client_widens_the_shared_budget_on_429_and_still_honours_retry_after(
    client: MomentsClient, emulator: Emulator, vclock: VirtualClock
) -> None:
    budget = client.rate_budget
    before = budget.safety_margin
    emulator.faults.enqueue(QueuedFault(kind="429", operation="add-flow-participants", count=1))
    started = vclock()
    await client.add_flow_participants(CAMPAIGN_ID, [participant(1)])
    assert client.stats.http_429 == 1 and budget.pauses == 1
    assert vclock() - started >= 1.0  # Retry-After: 1
    assert budget.safety_margin == pytest.approx(before + 0.015)
    # Accepted answers (the retried add included) count towards relaxing.
    for i in range(2, 202):
        await client.add_flow_participants(CAMPAIGN_ID, [participant(i)])
    assert budget.safety_margin == pytest.approx(before + 0.01)


def _max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(sum(1 for t in times if s <= t < s + window) for s in times)


async def test_the_window_counts_issues_not_slots_so_work_in_between_never_bunches() -> None:
    """Each caller holds its slot a varying while before issuing (the engine's durable mark):
    every sliding second still holds at most 10 issues, and the pace stays at the limit."""
    clock = VirtualClock()
    budget = RateBudget(10, safety_margin=0.01, clock=clock, sleep=clock.sleep)
    issues: list[float] = []
    # Slow marks first, then fast ones: issues of later slots would catch up with earlier ones
    # if the window counted slots.
    delays = [0.09 if i % 10 < 5 else 0.0 for i in range(60)]

    async def one(delay: float) -> None:
        await budget.reserve()
        await clock.sleep(delay)
        budget.issued()
        issues.append(clock())

    await asyncio.gather(*(one(d) for d in delays))
    assert _max_in_window(issues, 1.0) <= 10


async def test_a_short_mark_before_each_issue_keeps_the_pace_at_the_limit() -> None:
    """A few milliseconds between slot and issue (a ledger write) cost about their share of
    the window, never a second."""
    clock = VirtualClock()
    budget = RateBudget(10, safety_margin=0.01, clock=clock, sleep=clock.sleep)
    issues: list[float] = []
    for i in range(80):
        await budget.reserve()
        await clock.sleep(0.002 + 0.002 * (i % 3))
        budget.issued()
        issues.append(clock())
    steady = issues[20:]
    assert _max_in_window(issues, 1.0) <= 10
    assert (len(steady) - 1) / (steady[-1] - steady[0]) > 0.97 * 10


async def test_a_cancelled_reservation_frees_its_place() -> None:
    clock = VirtualClock()
    budget = RateBudget(10, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        await budget.reserve()
    assert budget.try_reserve() > 0  # ten outstanding reservations fill the window
    for _ in range(10):
        budget.cancel_reservation()
    clock.now += 0.2  # past the grid's next slot
    assert budget.try_reserve() == 0.0
