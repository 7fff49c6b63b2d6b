"""A paced request counts as issued when its body is written, so a delay before the write never
bunches it with later requests at the server.

The served tests hold two consecutive requests back for 400 ms between their rate slots and
their writes (a slow new connection, a stalled encoder), on the real clock against the
emulator's 10/s limiter, with the client spaced 10 % wider than the limit so that the test
machine's own jitter stays far from the limiter's tolerance. With the issue taken from
httpcore's write event the server sees no 429; the negative control hides the write event (the
fallback dates the issue at the attempt's start, as the client used to) and the held requests
then land in the same second as the nine behind them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from moments_pipeline.emulator import EmulatorSettings, SystemClock
from moments_pipeline.emulator.testing import ServedEmulator
from moments_pipeline.infobip import MomentsClient, MomentsClientConfig, RateBudget
from moments_pipeline.infobip._issue import IssueMark

from .support import API_KEY, CAMPAIGN_ID, participant

HELD_S = 0.4


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _budget(clock: _Clock) -> RateBudget:
    budget = RateBudget(10, clock=clock)
    assert budget.try_reserve() == 0.0
    return budget


async def test_the_write_event_is_the_issue_time() -> None:
    clock = _Clock()
    budget = _budget(clock)
    mark = IssueMark(budget)
    clock.now = 100.3
    await mark.extensions["trace"]("http11.send_request_headers.complete", {})
    assert list(budget._issued) == []  # headers alone are not the request
    await mark.extensions["trace"]("http11.send_request_body.complete", {})
    mark.settle(maybe_sent=True)
    assert list(budget._issued) == [100.3]
    assert budget._reserved == 0


def test_without_write_events_the_attempt_start_is_the_issue_time() -> None:
    clock = _Clock()
    budget = _budget(clock)
    mark = IssueMark(budget)
    clock.now = 100.5
    mark.settle(maybe_sent=True)
    mark.settle(maybe_sent=True)  # settled once only
    assert list(budget._issued) == [100.0]
    assert budget._reserved == 0


def test_nothing_sent_gives_the_reservation_back() -> None:
    clock = _Clock()
    budget = _budget(clock)
    IssueMark(budget).settle(maybe_sent=False)
    assert list(budget._issued) == []
    assert budget._reserved == 0


def test_a_late_issue_time_keeps_the_window_ordered() -> None:
    clock = _Clock()
    budget = RateBudget(10, clock=clock)
    budget.issued(at=100.2)
    budget.issued(at=100.1)
    budget.issued()
    assert list(budget._issued) == [100.0, 100.1, 100.2]


class _Hold(httpx.AsyncBaseTransport):
    """Real HTTP, with the requests numbered in ``hold`` held back before they are written."""

    def __init__(self, *, hold: set[int], hide_write_events: bool) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._hold = hold
        self._hide = hide_write_events
        self._seen = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._seen += 1
        if self._hide:
            request.extensions = {k: v for k, v in request.extensions.items() if k != "trace"}
        if self._seen in self._hold:
            await asyncio.sleep(HELD_S)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.fixture
def limited_emulator(
    emulator_settings: EmulatorSettings, emulator_registry: list[Any]
) -> Iterator[ServedEmulator]:
    settings = emulator_settings.model_copy(update={"rate_limit_per_s": 10.0})
    with ServedEmulator(settings, api_key=API_KEY, clock=SystemClock()) as served:
        emulator_registry.append(served.emulator)
        yield served


async def _send_with_one_held(served: ServedEmulator, *, hide_write_events: bool) -> int:
    config = MomentsClientConfig(base_url=served.base_url, api_key=API_KEY, max_in_flight=16)
    # Past the budget's first (widest-spaced) window, so the held one is paced like any other.
    transport = _Hold(hold={14, 15}, hide_write_events=hide_write_events)
    budget = RateBudget(10, safety_margin=0.1)
    async with MomentsClient(config, transport=transport, rate_budget=budget) as client:
        await asyncio.gather(
            *(client.add_flow_participants(CAMPAIGN_ID, [participant(i)]) for i in range(32))
        )
    return sum(1 for e in served.emulator.request_log if e["status"] == 429)


@pytest.mark.served
async def test_a_request_held_before_its_write_is_not_bunched(
    limited_emulator: ServedEmulator,
) -> None:
    assert await _send_with_one_held(limited_emulator, hide_write_events=False) == 0
    assert len(limited_emulator.emulator.operations) == 32


@pytest.mark.served
async def test_control_dating_the_issue_at_the_slot_gets_a_429(
    limited_emulator: ServedEmulator,
) -> None:
    assert await _send_with_one_held(limited_emulator, hide_write_events=True) > 0
    assert len(limited_emulator.emulator.operations) == 32
