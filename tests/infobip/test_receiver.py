"""CallbackReceiver: secret path token, report parsing, handlers by callbackData, wait_for."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from moments_pipeline.infobip import (
    CallbackReceiver,
    CallbackServer,
    FlowParticipantsReportResponse,
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
