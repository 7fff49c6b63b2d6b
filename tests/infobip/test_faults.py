"""Every fault the emulator injects, and the outcome the client gives for it.

Sends are counted in the emulator's request log: an ambiguous add-participants is never
re-sent, while what is safe to retry is retried.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import httpx
import pytest

from moments_pipeline.emulator import Emulator, FaultSettings, QueuedFault
from moments_pipeline.emulator.testing import EmulatorTransport, ServedEmulator
from moments_pipeline.infobip import (
    AmbiguousSendError,
    MomentsClient,
    MomentsError,
    RateLimitedError,
    RemovalOutcome,
    RetryPolicy,
    ServerError,
    TransportError,
)

from .support import CAMPAIGN_ID, FORM_ID, VirtualClock, participant, raises_clean

ADD = "add-flow-participants"
REPORT = "get-flow-participants-added-report"


def sends(emulator: Emulator, operation: str) -> int:
    return sum(1 for entry in emulator.request_log if entry["operation"] == operation)


def queue(emulator: Emulator, kind: str, operation: str, count: int = 1, **extra: object) -> None:
    emulator.faults.enqueue(QueuedFault(kind=kind, operation=operation, count=count, **extra))


class ConnectRefusedFirst(httpx.AsyncBaseTransport):
    """Refuses the first ``n`` connections the way a closed port does, then passes through."""

    def __init__(self, inner: httpx.AsyncBaseTransport, n: int) -> None:
        self.inner, self.left = inner, n

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.left > 0:
            self.left -= 1
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return await self.inner.handle_async_request(request)


@pytest.mark.parametrize("kind", ["500", "502", "503", "drop_after", "drop_before"])
async def test_ambiguous_add_is_never_resent(
    kind: str, client: MomentsClient, emulator: Emulator
) -> None:
    queue(emulator, kind, ADD)
    with raises_clean(AmbiguousSendError) as info:
        await client.add_flow_participants(CAMPAIGN_ID, [participant(1)], callback_data="b-7")
    error = info.value
    assert sends(emulator, ADD) == 1
    assert (error.operation, error.campaign_id, error.callback_data) == (ADD, CAMPAIGN_ID, "b-7")
    assert error.transient is False
    if kind.isdigit():
        assert isinstance(error.cause, ServerError) and error.status_code == int(kind)
    else:
        assert isinstance(error.cause, TransportError)
    # drop_after processed the body, drop_before did not: the client cannot tell them apart.
    assert len(emulator.operations) == (1 if kind == "drop_after" else 0)


async def test_read_timeout_on_add_is_ambiguous(
    client: MomentsClient,
    emulator: Emulator,
    emulator_transport: EmulatorTransport,
    make_client: Callable[..., MomentsClient],
) -> None:
    queue(emulator, "latency", ADD, latency_ms=5000)
    async with make_client(emulator_transport, read_timeout_s=1.0) as short:
        with raises_clean(AmbiguousSendError) as info:
            await short.add_flow_participants(CAMPAIGN_ID, [participant(1)])
    assert "ReadTimeout" in str(info.value)
    assert sends(emulator, ADD) == 1 and len(emulator.operations) == 1


@pytest.mark.parametrize("operation", ["submit-form-data", "increment-view-count"])
async def test_ambiguous_forms_writes_not_resent(
    operation: str, client: MomentsClient, emulator: Emulator
) -> None:
    queue(emulator, "503", operation)
    with raises_clean(AmbiguousSendError) as info:
        if operation == "submit-form-data":
            await client.submit_form_data(FORM_ID, {"email": "x@example.com"})
        else:
            await client.increment_view_count(FORM_ID)
    assert info.value.form_id == FORM_ID
    assert sends(emulator, operation) == 1


async def test_429_is_retried_after_retry_after(
    client: MomentsClient, emulator: Emulator, vclock: VirtualClock
) -> None:
    queue(emulator, "429", ADD, count=2)
    added = await client.add_flow_participants(CAMPAIGN_ID, [participant(1)])
    assert added.operation_id in emulator.operations
    assert sends(emulator, ADD) == 3
    assert client.stats.http_429 == 2
    # The emulator said Retry-After: 1; the whole budget paused for it each time.
    assert client.rate_budget.pauses == 2
    assert sum(vclock.sleeps) >= 2.0


async def test_429_exhausted_is_rate_limited_not_ambiguous(
    client: MomentsClient, emulator: Emulator
) -> None:
    queue(emulator, "429", ADD, count=10)
    with raises_clean(RateLimitedError) as info:
        await client.add_flow_participants(CAMPAIGN_ID, [participant(1)])
    assert info.value.retry_after_s == 1.0 and info.value.transient
    assert sends(emulator, ADD) == client.config.max_attempts
    assert emulator.operations == {}


@pytest.mark.parametrize("kind", ["500", "502", "503", "drop_before", "drop_after", "429"])
async def test_gets_are_retried(kind: str, client: MomentsClient, emulator: Emulator) -> None:
    added = await client.add_flow_participants(CAMPAIGN_ID, [participant(1)])
    queue(emulator, kind, REPORT, count=2)
    report = await client.get_flow_participants_added_report(CAMPAIGN_ID, added.operation_id)
    assert report.operation_id == added.operation_id
    assert sends(emulator, REPORT) == 3
    queue(emulator, kind, "get-forms", count=1)
    assert (await client.get_forms()).forms
    assert sends(emulator, "get-forms") == 2


async def test_get_gives_up_after_max_attempts(
    client: MomentsClient, emulator: Emulator, vclock: VirtualClock
) -> None:
    queue(emulator, "500", "get-form", count=10)
    started = vclock()
    with raises_clean(ServerError) as info:
        await client.get_form(FORM_ID)
    assert info.value.transient and info.value.message_id == "GENERAL_ERROR"
    assert sends(emulator, "get-form") == client.config.max_attempts
    # Backoff between attempts stays within the doubling ceilings (0.5 + 1 + 2 + 4 s).
    assert vclock() - started <= 7.5 + client.config.max_attempts * client.rate_budget.interval_s


def test_backoff_doubles_with_full_jitter_and_honours_retry_after() -> None:
    policy = RetryPolicy(max_attempts=6, initial_s=0.5, max_s=4.0)
    for attempt, ceiling in enumerate([0.5, 1.0, 2.0, 4.0, 4.0], start=1):
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # jitter spreads over the whole range
    assert all(policy.delay(1, retry_after_s=3.0) >= 3.0 for _ in range(50))


async def test_read_timeout_on_get_is_retried(
    emulator: Emulator,
    emulator_transport: EmulatorTransport,
    make_client: Callable[..., MomentsClient],
) -> None:
    queue(emulator, "latency", "get-form", latency_ms=5000)
    async with make_client(emulator_transport, read_timeout_s=1.0) as c:
        assert (await c.get_form(FORM_ID)).id == FORM_ID
    assert sends(emulator, "get-form") == 2


@pytest.mark.parametrize("kind", ["drop_after", "500"])
async def test_delete_retried_and_40006_after_ambiguous_counts_as_done(
    kind: str, client: MomentsClient, emulator: Emulator, vclock: VirtualClock
) -> None:
    await client.add_flow_participants(CAMPAIGN_ID, [participant(3)])
    await vclock.sleep(1.0)
    queue(emulator, kind, "remove-people-from-flow")
    outcome = await client.remove_people_from_flow(CAMPAIGN_ID, phone="41790000003")
    removed_by_first = kind == "drop_after"
    expected = RemovalOutcome.ASSUMED_REMOVED if removed_by_first else RemovalOutcome.REMOVED
    assert outcome is expected
    assert sends(emulator, "remove-people-from-flow") == 2


async def test_connect_error_is_retried_for_add(
    emulator: Emulator,
    emulator_transport: EmulatorTransport,
    make_client: Callable[..., MomentsClient],
) -> None:
    async with make_client(ConnectRefusedFirst(emulator_transport, 2)) as c:
        added = await c.add_flow_participants(CAMPAIGN_ID, [participant(1)])
        assert c.stats.transport_errors == 2
    assert added.operation_id in emulator.operations
    assert sends(emulator, ADD) == 1


@pytest.mark.served
async def test_connect_error_on_a_real_closed_port(
    make_client: Callable[..., MomentsClient],
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with make_client(f"http://127.0.0.1:{port}", max_attempts=3) as c:
        with raises_clean(TransportError) as info:
            await c.add_flow_participants(CAMPAIGN_ID, [participant(1)])
        assert c.stats.requests == 3
    assert info.value.transient and not isinstance(info.value, AmbiguousSendError)


@pytest.mark.served
@pytest.mark.parametrize("kind", ["503", "drop_after", "drop_before", "latency"])
async def test_served_ambiguous_add(
    kind: str, served_emulator: ServedEmulator, make_client: Callable[..., MomentsClient]
) -> None:
    emulator = served_emulator.emulator
    queue(emulator, kind, ADD, latency_ms=1000 if kind == "latency" else None)
    async with make_client(served_emulator.base_url, read_timeout_s=0.3) as c:
        with raises_clean(AmbiguousSendError):
            await c.add_flow_participants(CAMPAIGN_ID, [participant(1)], callback_data="s")
        # A GET through the same client after the fault works and is retried where needed.
        queue(emulator, "502", "get-forms")
        assert (await c.get_forms()).forms
    assert sends(emulator, ADD) == 1


@pytest.mark.served
async def test_served_429_and_delete(
    served_emulator: ServedEmulator, make_client: Callable[..., MomentsClient], vclock: VirtualClock
) -> None:
    emulator = served_emulator.emulator
    async with make_client(served_emulator.base_url) as c:
        queue(emulator, "429", ADD)
        await c.add_flow_participants(CAMPAIGN_ID, [participant(5)])
        assert sends(emulator, ADD) == 2
        await vclock.sleep(1.0)
        queue(emulator, "drop_after", "remove-people-from-flow")
        outcome = await c.remove_people_from_flow(CAMPAIGN_ID, email="p41795@example.com")
    assert outcome is RemovalOutcome.ASSUMED_REMOVED


def test_every_error_is_a_moments_error() -> None:
    for cls in (AmbiguousSendError, RateLimitedError, ServerError, TransportError):
        assert issubclass(cls, MomentsError)


async def test_random_faults_each_body_leaves_at_most_once(
    make_emulator: Callable[..., Emulator], make_client: Callable[..., MomentsClient]
) -> None:
    """Seeded random faults of every kind: every call sends its body past the limiter once."""
    faults = FaultSettings(
        error_rate=0.15,
        too_many_requests_rate=0.15,
        drop_before_rate=0.1,
        drop_after_rate=0.1,
        seed=7,
    )
    emulator = make_emulator(faults=faults)
    outcomes: dict[str, int] = {"ok": 0, "ambiguous": 0, "rate_limited": 0}
    async with make_client(EmulatorTransport(emulator.app)) as c:  # type: ignore[attr-defined]
        for i in range(60):
            try:
                await c.add_flow_participants(CAMPAIGN_ID, [participant(i)])
                outcomes["ok"] += 1
            except AmbiguousSendError:
                outcomes["ambiguous"] += 1
            except RateLimitedError:
                outcomes["rate_limited"] += 1
        for _ in range(20):
            assert (await c.get_forms()).forms  # GETs ride out the same faults
    adds = [e for e in emulator.request_log if e["operation"] == ADD]
    past_limiter = [e for e in adds if e["fault"] != "429" and e["status"] != 429]
    # One send per call that was not refused by 429s until it gave up; never a second one.
    assert len(past_limiter) == outcomes["ok"] + outcomes["ambiguous"]
    assert outcomes["ambiguous"] == sum(
        1 for e in past_limiter if e["fault"] in ("500", "502", "503", "drop_before", "drop_after")
    )
    assert outcomes["ok"] > 0 and outcomes["ambiguous"] > 0
    assert any(e["fault"] == "429" for e in adds)
