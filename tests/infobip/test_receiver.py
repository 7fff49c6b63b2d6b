"""CallbackReceiver: secret path token, report parsing, typed and raw handlers, wait_for, memory."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import orjson
import pydantic
import pytest

from moments_pipeline.infobip import (
    CallbackReceiver,
    CallbackServer,
    ErrorStatusReason,
    FlowParticipantsReportResponse,
    RawReport,
)

TOKEN = "receiver-token-5b1d3e7f9a2c4d6e"


def _report(callback_data: str | None, status: str = "ACCEPTED") -> dict[str, object]:
    report: dict[str, object] = {
        "operationId": "op-1",
        "campaignId": 42,
        "participants": [
            {"identifyBy": {"identifier": "41790000001", "type": "PHONE"}, "status": status}
        ],
    }
    if callback_data is not None:
        report["callbackData"] = callback_data
    return report


def _client(receiver: CallbackReceiver) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver), base_url="http://cb")


async def test_wrong_token_is_404_and_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    receiver = CallbackReceiver(token=TOKEN)
    async with _client(receiver) as http:
        wrong = await http.post("/moments/callbacks/not-the-token-at-all", json=_report("b1"))
        unknown = await http.post("/elsewhere", json=_report("b1"))
    assert wrong.status_code == 404 == unknown.status_code
    assert receiver.rejected == 1
    assert receiver.received("b1") is None
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(receiver)


async def test_report_goes_to_its_handler_and_waiter() -> None:
    seen: list[FlowParticipantsReportResponse] = []
    fallback: list[FlowParticipantsReportResponse] = []

    async def on_b1(report: FlowParticipantsReportResponse) -> None:
        seen.append(report)

    receiver = CallbackReceiver(token=TOKEN, handler=fallback.append)
    receiver.on("b1", on_b1)
    async with _client(receiver) as http:
        waiter = asyncio.ensure_future(receiver.wait_for("b1", timeout=5))
        await asyncio.sleep(0)
        ok = await http.post(receiver.path, json=_report("b1"))
        other = await http.post(receiver.path, json=_report("b2", "REJECTED"))
    assert ok.status_code == 200 == other.status_code
    report = await waiter
    assert report.callback_data == "b1" and seen == [report]
    assert [r.callback_data for r in fallback] == ["b2"]
    # A report that arrived before wait_for is still returned.
    assert (await receiver.wait_for("b2", timeout=0.1)).participants[0].status.value == "REJECTED"


async def test_not_a_report_is_400() -> None:
    receiver = CallbackReceiver(token=TOKEN)
    async with _client(receiver) as http:
        response = await http.post(receiver.path, json={"hello": "world"})
    assert response.status_code == 400


async def test_wait_for_times_out() -> None:
    receiver = CallbackReceiver(token=TOKEN)
    with pytest.raises(TimeoutError):
        await receiver.wait_for("never", timeout=0.05)


def test_short_token_refused() -> None:
    with pytest.raises(ValueError, match="token"):
        CallbackReceiver(token="short")


@pytest.mark.served
async def test_served_as_task_and_as_thread() -> None:
    receiver = CallbackReceiver()
    async with CallbackServer(receiver) as server:
        assert server.notify_url.startswith(f"http://127.0.0.1:{server.port}/moments/callbacks/")
        async with httpx.AsyncClient() as http:
            response = await http.post(server.notify_url, json=_report("task"))
        assert response.status_code == 200
    assert (await receiver.wait_for("task", timeout=1)).operation_id == "op-1"

    with CallbackServer(receiver) as server:
        waiter = asyncio.ensure_future(receiver.wait_for("thread", timeout=5))
        async with httpx.AsyncClient() as http:
            response = await http.post(server.notify_url, json=_report("thread"))
            wrong = await http.post(server.base_url + "/moments/callbacks/x" * 3, json=_report("x"))
        assert response.status_code == 200
        assert wrong.status_code == 404
        assert (await waiter).callback_data == "thread"


# --- the raw path and bounded memory ------------------------------------------------------------


def _big_report(callback_data: str, n: int = 50) -> dict[str, object]:
    participants: list[dict[str, object]] = []
    for i in range(n):
        item: dict[str, object] = {
            "identifyBy": {"identifier": f"user{i}@example.com", "type": "EMAIL"},
            "status": ["ACCEPTED", "REJECTED", "PENDING"][i % 3],
        }
        if i % 3 == 1:
            item["errorReason"] = "REJECTED_INVALID_CONTACT"
        participants.append(item)
    return {
        "operationId": f"op-{callback_data}",
        "campaignId": 200000000000001,
        "callbackData": callback_data,
        "participants": participants,
    }


async def test_raw_handler_gets_the_checked_bytes_and_keys() -> None:
    got: list[RawReport] = []
    receiver = CallbackReceiver(token=TOKEN, raw_handler=got.append)
    body = orjson.dumps(_big_report("batch-1"))
    async with _client(receiver) as http:
        response = await http.post(
            receiver.path, content=body, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 200
    (raw,) = got
    assert isinstance(raw, RawReport)
    assert (raw.callback_data, raw.operation_id, raw.campaign_id) == (
        "batch-1",
        "op-batch-1",
        200000000000001,
    )
    assert (raw.participants, raw.pending) == (50, 16) == (50, raw.model().pending)
    assert raw.body == body  # handed on as received: no re-serialization
    assert raw.model() == FlowParticipantsReportResponse.model_validate_json(body)
    assert "user0@example.com" not in repr(raw)


async def test_raw_body_uses_the_canonical_in_flow_reason() -> None:
    got: list[RawReport] = []
    typed: list[FlowParticipantsReportResponse] = []
    receiver = CallbackReceiver(token=TOKEN, raw_handler=got.append)
    receiver.on("typed", typed.append)
    report = _report("b1", "REJECTED")
    report["participants"][0]["errorReason"] = "REJECTED_PERSON_ALREADY_IN_FLOW"  # type: ignore[index]
    async with _client(receiver) as http:
        assert (await http.post(receiver.path, json=report)).status_code == 200
        report["callbackData"] = "typed"
        assert (await http.post(receiver.path, json=report)).status_code == 200
    stored = orjson.loads(got[0].body)
    assert stored["participants"][0]["errorReason"] == "REJECTED_PERSON_IN_FLOW"
    assert typed[0].participants[0].error_reason == ErrorStatusReason.REJECTED_PERSON_IN_FLOW


async def test_bodies_the_fast_check_does_not_vouch_for_go_through_the_model() -> None:
    got: list[RawReport] = []
    receiver = CallbackReceiver(token=TOKEN, raw_handler=got.append)
    snake = {
        "operation_id": "op-s",
        "campaign_id": "42",  # a numeric string: the model's lax mode accepts it
        "callback_data": "snake",
        "participants": [
            {"identify_by": {"identifier": "41790000001", "type": "PHONE"}, "status": "PENDING"}
        ],
    }
    async with _client(receiver) as http:
        assert (await http.post(receiver.path, json=snake)).status_code == 200
    (raw,) = got
    assert (raw.operation_id, raw.campaign_id, raw.callback_data, raw.pending) == (
        "op-s",
        42,
        "snake",
        1,
    )
    # The handler still gets the spec's camelCase JSON.
    assert orjson.loads(raw.body)["participants"][0]["identifyBy"]["type"] == "PHONE"


@pytest.mark.parametrize(
    "damage",
    [
        lambda r: r.pop("participants"),
        lambda r: r.update(campaignId="not a number"),
        lambda r: r["participants"][0].update(status="DONE"),
        lambda r: r["participants"][0].update(status=None),
        lambda r: r["participants"][0]["identifyBy"].update(identifier=41790000001),
        lambda r: r["participants"][0].pop("identifyBy"),
        lambda r: r["participants"][0].update(errorReason=7),
        lambda r: r.update(callbackData=12),
        lambda r: r.update(participants="all of them"),
    ],
)
async def test_what_the_model_refuses_the_raw_path_refuses(damage: Any) -> None:
    got: list[RawReport] = []
    receiver = CallbackReceiver(token=TOKEN, raw_handler=got.append)
    report = _report("b1")
    damage(report)
    with pytest.raises(pydantic.ValidationError):
        FlowParticipantsReportResponse.model_validate_json(orjson.dumps(report))
    async with _client(receiver) as http:
        response = await http.post(receiver.path, json=report)
    assert response.status_code == 400 and got == []


async def test_memory_is_bounded_when_a_handler_consumes_the_reports() -> None:
    got: list[str | None] = []
    receiver = CallbackReceiver(
        token=TOKEN, raw_handler=lambda r: got.append(r.callback_data), keep_reports=8
    )
    async with _client(receiver) as http:
        early = asyncio.ensure_future(receiver.wait_for("b-3", timeout=5))
        await asyncio.sleep(0)
        for i in range(40):
            assert (await http.post(receiver.path, json=_big_report(f"b-{i}"))).status_code == 200
    assert got == [f"b-{i}" for i in range(40)]
    assert receiver.kept == 8
    # A waiter registered before its report gets the typed model even with a raw handler.
    assert (await early).operation_id == "op-b-3"
    assert receiver.received("b-0") is None
    assert receiver.received("b-39") is not None
    assert (await receiver.wait_for("b-32", timeout=0.1)).callback_data == "b-32"
    with pytest.raises(TimeoutError):
        await receiver.wait_for("b-31", timeout=0.05)


def test_one_default_handler_only() -> None:
    with pytest.raises(ValueError, match="not both"):
        CallbackReceiver(token=TOKEN, handler=print, raw_handler=print)


async def test_typed_only_receiver_keeps_odd_bodies_readable() -> None:
    typed: list[FlowParticipantsReportResponse] = []
    receiver = CallbackReceiver(token=TOKEN, handler=typed.append)
    snake = {
        "operation_id": "op-t",
        "campaign_id": 42,
        "callback_data": "typed-snake",
        "participants": [
            {"identify_by": {"identifier": "41790000001", "type": "PHONE"}, "status": "ACCEPTED"}
        ],
    }
    async with _client(receiver) as http:
        assert (await http.post(receiver.path, json=snake)).status_code == 200
    assert typed[0].operation_id == "op-t"
    assert receiver.received("typed-snake") == typed[0]
