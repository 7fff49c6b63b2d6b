"""Two clients of one account share one rate budget and together stay under the 10/s limit.

Runs on the real clock against the served emulator with its limiter on (10/s). The negative
control gives each client a private budget: together they then exceed the limit, which shows
the emulator's limiter would catch a client that does not share its budget.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from moments_pipeline.emulator import EmulatorSettings, SystemClock
from moments_pipeline.emulator.testing import ServedEmulator
from moments_pipeline.infobip import (
    MomentsClient,
    MomentsClientConfig,
    RateBudget,
    rate_budget_for,
)

from .support import API_KEY, CAMPAIGN_ID, participant

PER_CLIENT = 8


@pytest.fixture
def limited_emulator(
    emulator_settings: EmulatorSettings, emulator_registry: list[Any]
) -> Iterator[ServedEmulator]:
    """Served emulator on the wall clock with the 10/s limiter on.

    Its window tolerance is widened to 150 ms so that scheduling stalls of this shared test
    machine are not mistaken for client bursts; two unshared clients still exceed it easily.
    """
    settings = emulator_settings.model_copy(
        update={"rate_limit_per_s": 10.0, "rate_limit_jitter_ms": 150.0}
    )
    with ServedEmulator(settings, api_key=API_KEY, clock=SystemClock()) as served:
        emulator_registry.append(served.emulator)
        yield served


def _limited(served: ServedEmulator) -> int:
    return sum(1 for e in served.emulator.request_log if e["status"] == 429)


async def _send_from_both(a: MomentsClient, b: MomentsClient) -> None:
    await asyncio.gather(
        *(
            a.add_flow_participants(CAMPAIGN_ID, [participant(i, prefix="4170")])
            for i in range(PER_CLIENT)
        ),
        *(
            b.add_flow_participants(CAMPAIGN_ID, [participant(i, prefix="4171")])
            for i in range(PER_CLIENT)
        ),
    )


@pytest.mark.served
async def test_two_clients_share_the_account_budget(limited_emulator: ServedEmulator) -> None:
    config = MomentsClientConfig(base_url=limited_emulator.base_url, api_key=API_KEY)
    async with MomentsClient(config) as a, MomentsClient(config.model_copy()) as b:
        assert a.rate_budget is b.rate_budget is rate_budget_for(config)
        await _send_from_both(a, b)
        assert a.stats.http_429 == b.stats.http_429 == 0
    assert _limited(limited_emulator) == 0
    assert len(limited_emulator.emulator.operations) == 2 * PER_CLIENT


@pytest.mark.served
async def test_private_budgets_would_exceed_the_limit(limited_emulator: ServedEmulator) -> None:
    config = MomentsClientConfig(base_url=limited_emulator.base_url, api_key=API_KEY)
    async with (
        MomentsClient(config, rate_budget=RateBudget(10)) as a,
        MomentsClient(config, rate_budget=RateBudget(10)) as b,
    ):
        await _send_from_both(a, b)
        # Every call still succeeded: the 429s were retried after Retry-After.
        assert a.stats.http_429 + b.stats.http_429 > 0
    assert _limited(limited_emulator) > 0
    assert len(limited_emulator.emulator.operations) == 2 * PER_CLIENT
