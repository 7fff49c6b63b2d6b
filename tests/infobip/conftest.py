"""Fixtures of the client tests: clients wired to the emulator, on a virtual clock."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from moments_pipeline.emulator import EmulatorSettings, ManualClock
from moments_pipeline.emulator.testing import EmulatorTransport
from moments_pipeline.infobip import MomentsClient, MomentsClientConfig

from .support import API_KEY, VirtualClock


@pytest.fixture
def emulator_settings() -> EmulatorSettings:
    """The emulator fixtures' defaults, but with this suite's distinctive API key."""
    return EmulatorSettings(
        api_keys=[SecretStr(API_KEY)],
        rate_limit_per_s=None,
        record_exchanges=True,
        callback_backoff_s=0.01,
        callback_timeout_s=2.0,
    )


@pytest.fixture
def vclock(emulator_clock: ManualClock) -> VirtualClock:
    """The client's virtual clock; the emulator's manual clock follows it."""
    clock = VirtualClock()
    clock.listeners.append(emulator_clock.advance)
    return clock


@pytest.fixture
def make_client(vclock: VirtualClock) -> Callable[..., MomentsClient]:
    """Factory ``make_client(transport_or_base_url, **config) -> MomentsClient``.

    An ``EmulatorTransport`` gives an in-process client; a base URL a client over the network.
    Clients run on the virtual clock (private rate budget), so nothing really waits.
    """

    def make(target: Any, **config: Any) -> MomentsClient:
        config.setdefault("backoff_initial_s", 0.5)
        if isinstance(target, httpx.AsyncBaseTransport):
            cfg = MomentsClientConfig(base_url="http://localhost", api_key=API_KEY, **config)
            return MomentsClient(cfg, transport=target, clock=vclock, sleep=vclock.sleep)
        cfg = MomentsClientConfig(base_url=target, api_key=API_KEY, **config)
        return MomentsClient(cfg, clock=vclock, sleep=vclock.sleep)

    return make


@pytest.fixture
async def client(
    emulator_transport: EmulatorTransport, make_client: Callable[..., MomentsClient]
) -> AsyncIterator[MomentsClient]:
    """An in-process client on the virtual clock."""
    async with make_client(emulator_transport) as c:
        yield c


@pytest.fixture(autouse=True)
def key_never_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every client test runs with DEBUG logging captured; the API key must never appear."""
    caplog.set_level(logging.DEBUG)
    yield
    assert API_KEY not in caplog.text
    assert all(API_KEY not in str(r.args) for r in caplog.records)
