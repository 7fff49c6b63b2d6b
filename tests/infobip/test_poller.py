"""wait_for_report: backoff between polls, deadline, and the shared budget, on a virtual clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from moments_pipeline.emulator import Emulator, FaultSettings
from moments_pipeline.emulator.testing import EmulatorTransport
from moments_pipeline.infobip import (
    FlowParticipantsReportResponse,
    MomentsClient,
    NotFoundError,
    ReportDeadlineExceeded,
)

from .support import CAMPAIGN_ID, VirtualClock, participant


def polls(emulator: Emulator) -> int:
    return sum(
        1 for e in emulator.request_log if e["operation"] == "get-flow-participants-added-report"
    )


async def test_polls_with_backoff_until_complete(
    make_emulator: Callable[..., Emulator],
    make_client: Callable[..., MomentsClient],
    vclock: VirtualClock,
) -> None:
    emulator = make_emulator(processing_delay_s=10.0)
    async with make_client(EmulatorTransport(emulator.app)) as client:  # type: ignore[attr-defined]
        added = await client.add_flow_participants(CAMPAIGN_ID, [participant(1), participant(2)])
        started = vclock()
        vclock.sleeps.clear()
        report = await client.wait_for_report(
            CAMPAIGN_ID, added.operation_id, deadline_s=60, initial_interval_s=1, max_interval_s=4
        )
    assert isinstance(report, FlowParticipantsReportResponse) and report.is_complete
    # Polls at 0, 1, 3, 7, 11 s: the wait doubles up to max_interval_s.
    assert [s for s in vclock.sleeps if s > 0.2] == [1, 2, 4, 4]
    assert vclock() - started == pytest.approx(11, abs=0.5)
    assert polls(emulator) == 5


async def test_deadline_raises_with_the_last_report(
    make_emulator: Callable[..., Emulator],
    make_client: Callable[..., MomentsClient],
    vclock: VirtualClock,
) -> None:
    emulator = make_emulator(processing_delay_s=1000.0)
    async with make_client(EmulatorTransport(emulator.app)) as client:  # type: ignore[attr-defined]
        added = await client.add_flow_participants(CAMPAIGN_ID, [participant(1)])
        started = vclock()
        with pytest.raises(ReportDeadlineExceeded) as info:
            await client.wait_for_report(
                CAMPAIGN_ID, added.operation_id, deadline_s=10, initial_interval_s=1
            )
    error = info.value
    assert error.last_report.operation_id == added.operation_id
    assert error.last_report.pending == 1
    assert error.transient
    # The last wait is cut to the deadline, then one final poll at the deadline.
    assert vclock() - started == pytest.approx(10, abs=0.5)
    assert polls(emulator) == 5  # 0, 1, 3, 7, 10


async def test_slow_report_fault(
    make_emulator: Callable[..., Emulator],
    make_client: Callable[..., MomentsClient],
    vclock: VirtualClock,
) -> None:
    emulator = make_emulator(faults=FaultSettings(report_delay_s=20.0))
    async with make_client(EmulatorTransport(emulator.app)) as client:  # type: ignore[attr-defined]
        added = await client.add_flow_participants(CAMPAIGN_ID, [participant(1)])
        with pytest.raises(ReportDeadlineExceeded):
            await client.wait_for_report(CAMPAIGN_ID, added.operation_id, deadline_s=5)
        report = await client.wait_for_report(
            CAMPAIGN_ID, added.operation_id, deadline_s=60, max_interval_s=8
        )
    assert report.is_complete


async def test_polls_spend_the_rate_budget(client: MomentsClient, vclock: VirtualClock) -> None:
    added = await client.add_flow_participants(CAMPAIGN_ID, [participant(1)])
    before = client.rate_budget.acquired
    await client.wait_for_report(CAMPAIGN_ID, added.operation_id, deadline_s=30)
    assert client.rate_budget.acquired > before


async def test_unknown_operation_fails_fast(client: MomentsClient) -> None:
    with pytest.raises(NotFoundError):
        await client.wait_for_report(CAMPAIGN_ID, "nope", deadline_s=30)


async def test_bad_arguments(client: MomentsClient) -> None:
    with pytest.raises(ValueError, match="deadline_s"):
        await client.wait_for_report(CAMPAIGN_ID, "x", deadline_s=0)
