"""The client's ``SendGate`` seam: slot, then the caller's durable mark, then the request.

The client calls ``before_issue`` once per attempt after its rate slot and before a byte
leaves, ``not_processed`` as soon as an answer proves the attempt was not processed (429,
other 4xx, refused connection), and neither for an answer that may have been processed.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from moments_pipeline.emulator import Emulator, QueuedFault
from moments_pipeline.emulator.testing import EmulatorTransport
from moments_pipeline.infobip import (
    AmbiguousSendError,
    MomentsClient,
    NotFoundError,
    RateLimitedError,
)

from .support import CAMPAIGN_ID, participant
from .test_faults import ConnectRefusedFirst

ADD = "add-flow-participants"


class Recorder:
    """A gate writing down what the client told it, and what the server had seen by then."""

    def __init__(self, emulator: Emulator, *, refuse: bool = False) -> None:
        self.emulator = emulator
        self.events: list[tuple[str, int]] = []
        self.refuse = refuse

    def _adds_seen(self) -> int:
        return sum(1 for e in self.emulator.request_log if e["operation"] == ADD)

    async def before_issue(self) -> None:
        self.events.append(("before_issue", self._adds_seen()))
        if self.refuse:
            raise LookupError("claim lost")

    async def not_processed(self) -> None:
        self.events.append(("not_processed", self._adds_seen()))


def _queue(emulator: Emulator, kind: str, count: int = 1) -> None:
    emulator.faults.enqueue(QueuedFault(kind=kind, operation=ADD, count=count))


async def test_a_plain_send_calls_the_gate_once_before_the_request(
    client: MomentsClient, emulator: Emulator
) -> None:
    gate = Recorder(emulator)
    await client.add_flow_participants(CAMPAIGN_ID, [participant(1)], gate=gate)
    assert gate.events == [("before_issue", 0)]  # the server had seen nothing yet


async def test_a_429_is_not_processed_then_the_retry_is_gated_again(
    client: MomentsClient, emulator: Emulator
) -> None:
    _queue(emulator, "429")
    gate = Recorder(emulator)
    await client.add_flow_participants(CAMPAIGN_ID, [participant(1)], gate=gate)
    assert gate.events == [("before_issue", 0), ("not_processed", 1), ("before_issue", 1)]


async def test_refused_connections_are_not_processed(
    emulator_transport: EmulatorTransport,
    emulator: Emulator,
    make_client: Callable[..., MomentsClient],
) -> None:
    async with make_client(ConnectRefusedFirst(emulator_transport, 1)) as client:
        gate = Recorder(emulator)
        await client.add_flow_participants(CAMPAIGN_ID, [participant(1)], gate=gate)
    assert [name for name, _ in gate.events] == ["before_issue", "not_processed", "before_issue"]


async def test_a_4xx_refusal_is_not_processed(client: MomentsClient, emulator: Emulator) -> None:
    gate = Recorder(emulator)
    with pytest.raises(NotFoundError):  # 404 40401: no such flow
        await client.add_flow_participants(999, [participant(1)], gate=gate)
    assert [name for name, _ in gate.events] == ["before_issue", "not_processed"]


@pytest.mark.parametrize("kind", ["503", "drop_after"])
async def test_an_ambiguous_answer_is_never_called_not_processed(
    kind: str, client: MomentsClient, emulator: Emulator
) -> None:
    _queue(emulator, kind)
    gate = Recorder(emulator)
    with pytest.raises(AmbiguousSendError):
        await client.add_flow_participants(CAMPAIGN_ID, [participant(1)], gate=gate)
    assert gate.events == [("before_issue", 0)]


async def test_a_gate_that_refuses_issues_nothing_and_frees_the_slot(
    client: MomentsClient, emulator: Emulator
) -> None:
    gate = Recorder(emulator, refuse=True)
    with pytest.raises(LookupError):
        await client.add_flow_participants(CAMPAIGN_ID, [participant(1)], gate=gate)
    assert not any(e["operation"] == ADD for e in emulator.request_log)
    assert client.stats.requests == 0
    assert client.rate_budget.try_reserve() == pytest.approx(0.0, abs=1.0)  # not stuck


async def test_429s_until_the_last_attempt_leave_the_send_not_processed(
    client: MomentsClient, emulator: Emulator
) -> None:
    _queue(emulator, "429", count=10)
    gate = Recorder(emulator)
    with pytest.raises(RateLimitedError):
        await client.add_flow_participants(CAMPAIGN_ID, [participant(1)], gate=gate)
    assert gate.events[-1][0] == "not_processed"
    names = [name for name, _ in gate.events]
    assert names.count("before_issue") == names.count("not_processed")
