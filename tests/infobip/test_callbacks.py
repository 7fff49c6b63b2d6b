"""The emulator's notifyUrl POST reaches CallbackReceiver, keyed by callbackData."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from starlette.applications import Starlette

from moments_pipeline.emulator import Emulator, ManualClock
from moments_pipeline.emulator.testing import EmulatorTransport, ServedEmulator
from moments_pipeline.infobip import (
    AddFlowParticipantStatus,
    CallbackReceiver,
    CallbackServer,
    FlowParticipantsReportResponse,
    MomentsClient,
)

from .support import CAMPAIGN_ID, VirtualClock, participant


async def test_in_process_callback_by_callback_data(
    make_emulator_app: Callable[..., Starlette],
    make_client: Callable[..., MomentsClient],
    vclock: VirtualClock,
) -> None:
    handled: list[FlowParticipantsReportResponse] = []
    receiver = CallbackReceiver()
    receiver.on("batch-A", handled.append)
    app = make_emulator_app(callback_transport=httpx.ASGITransport(app=receiver))
    emulator: Emulator = app.state.emulator
    notify_url = receiver.notify_url("http://callbacks.test")
    async with make_client(EmulatorTransport(app)) as client:
        a = await client.add_flow_participants(
            CAMPAIGN_ID, [participant(1)], notify_url=notify_url, callback_data="batch-A"
        )
        b = await client.add_flow_participants(
            CAMPAIGN_ID,
            [participant(1), participant(2)],
            notify_url=notify_url,
            callback_data="batch-B",
        )
        await vclock.sleep(1.0)
        await emulator.drain_callbacks()
        report_b = await receiver.wait_for("batch-B", timeout=5)
    assert [r.operation_id for r in handled] == [a.operation_id]
    assert report_b.operation_id == b.operation_id
    statuses = [p.status for p in report_b.participants]
    assert statuses == [AddFlowParticipantStatus.REJECTED, AddFlowParticipantStatus.ACCEPTED]


async def test_callback_with_wrong_token_is_rejected(
    make_emulator_app: Callable[..., Starlette],
    make_client: Callable[..., MomentsClient],
    vclock: VirtualClock,
) -> None:
    receiver = CallbackReceiver()
    app = make_emulator_app(
        callback_transport=httpx.ASGITransport(app=receiver), callback_retries=0
    )
    async with make_client(EmulatorTransport(app)) as client:
        await client.add_flow_participants(
            CAMPAIGN_ID,
            [participant(1)],
            notify_url="http://callbacks.test/moments/callbacks/guessed-token-0000000000",
            callback_data="batch-X",
        )
        await vclock.sleep(1.0)
        await app.state.emulator.drain_callbacks()
    assert receiver.rejected == 1
    assert receiver.received("batch-X") is None


@pytest.mark.served
async def test_served_emulator_posts_to_served_receiver(
    make_client: Callable[..., MomentsClient],
    emulator_settings: object,
    emulator_registry: list[object],
) -> None:
    receiver = CallbackReceiver()
    clock = ManualClock()
    served = ServedEmulator(emulator_settings, clock=clock)  # type: ignore[arg-type]
    emulator_registry.append(served)
    with served, CallbackServer(receiver) as server:
        async with make_client(served.base_url) as client:
            added = await client.add_flow_participants(
                CAMPAIGN_ID,
                [participant(9)],
                notify_url=server.notify_url,
                callback_data="served-batch",
            )
            clock.advance(1.0)
            report = await receiver.wait_for("served-batch", timeout=10)
    assert report.operation_id == added.operation_id
    assert report.participants[0].status is AddFlowParticipantStatus.ACCEPTED
