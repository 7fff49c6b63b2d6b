"""Auth, rate limit, callbacks and faults, in process."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from moments_pipeline.emulator import BasicUser, Emulator, FaultSettings
from moments_pipeline.emulator.inspection import inspection_routes
from moments_pipeline.emulator.ratelimit import RateLimiter
from moments_pipeline.emulator.testing import EmulatorTransport
from tests.emulator.conftest import ADD, REPORT, email

UNAUTHORIZED = {
    "requestError": {"serviceException": {"messageId": "UNAUTHORIZED", "text": "Unauthorized"}}
}
TOO_MANY = {
    "requestError": {
        "serviceException": {"messageId": "TOO_MANY_REQUESTS", "text": "Too many requests"}
    }
}
GENERAL = {
    "requestError": {
        "serviceException": {
            "messageId": "GENERAL_ERROR",
            "text": "Something went wrong. Please contact support.",
        }
    }
}
BODY = {"participants": [email("a@x.com")]}


def _client(app: Starlette, auth: str | None = "App test-key") -> httpx.AsyncClient:
    headers = {"Authorization": auth} if auth else {}
    return httpx.AsyncClient(transport=EmulatorTransport(app), base_url="http://e", headers=headers)


@pytest.mark.parametrize(
    ("auth", "status"),
    [
        ("App test-key", 200),
        ("App wrong-key", 401),
        (None, 401),
        ("Basic " + base64.b64encode(b"ann:open-sesame").decode(), 200),
        ("Basic " + base64.b64encode(b"ann:wrong").decode(), 401),
        ("Basic !!!", 401),
        ("Bearer test-key", 401),
    ],
)
async def test_auth(make_emulator_app: Any, auth: str | None, status: int) -> None:
    app = make_emulator_app(
        basic_users=[BasicUser(username="ann", password=SecretStr("open-sesame"))]
    )
    async with _client(app, auth) as client:
        response = await client.post(ADD, json=BODY)
    assert response.status_code == status
    if status == 401:
        assert response.json() == UNAUTHORIZED
        assert app.state.emulator.operations == {}


def test_secrets_stay_out_of_reprs(emulator_settings: Any) -> None:
    settings = emulator_settings.model_copy(
        update={"basic_users": [BasicUser(username="ann", password=SecretStr("pw-123"))]}
    )
    assert "test-key" not in repr(settings)
    assert "pw-123" not in repr(settings)


async def test_eleventh_request_in_a_second_gets_429_with_retry_after(
    make_emulator_app: Any,
) -> None:
    app = make_emulator_app(rate_limit_per_s=10)
    async with _client(app) as client:
        statuses = [(await client.post(ADD, json=BODY)).status_code for _ in range(10)]
        refused = await client.post(ADD, json=BODY)
    assert statuses == [200] * 10
    assert refused.status_code == 429
    assert refused.json() == TOO_MANY
    assert int(refused.headers["Retry-After"]) >= 1
    assert len(app.state.emulator.operations) == 10


async def test_the_rate_limit_is_per_account_not_per_credential(make_emulator_app: Any) -> None:
    app = make_emulator_app(
        rate_limit_per_s=10,
        api_keys=[SecretStr("test-key"), SecretStr("second-key")],
        basic_users=[BasicUser(username="ann", password=SecretStr("open-sesame"))],
    )
    basic = "Basic " + base64.b64encode(b"ann:open-sesame").decode()
    credentials = ["App test-key", "App second-key", basic] * 3 + ["App test-key"]
    statuses = []
    for auth in credentials:
        async with _client(app, auth) as client:
            statuses.append((await client.post(ADD, json=BODY)).status_code)
    assert statuses == [200] * 10
    for auth in ("App second-key", basic):
        async with _client(app, auth) as client:
            refused = await client.post(ADD, json=BODY)
        assert (refused.status_code, refused.json()) == (429, TOO_MANY)
    assert len(app.state.emulator.operations) == 10


async def test_pacing_at_exactly_ten_per_second_never_sees_429(
    make_emulator_app: Any, emulator_clock: Any
) -> None:
    app = make_emulator_app(rate_limit_per_s=10)
    jitter = [0.0, 0.004, -0.004, 0.003, -0.002]
    async with _client(app) as client:
        for i in range(60):
            # each request is nominally 100 ms after the previous one, give or take a few ms
            emulator_clock.advance(0.1 + jitter[i % 5] - jitter[(i - 1) % 5] if i else 0)
            response = await client.get(REPORT, params={"operationId": "x"})
            assert response.status_code == 404, (i, response.status_code)


def test_rate_limiter_window_and_retry_after() -> None:
    limiter = RateLimiter(10, jitter_ms=50)
    assert all(limiter.admit("a", 0.0) is None for _ in range(10))
    assert limiter.admit("a", 0.5) == 1
    assert limiter.admit("b", 0.5) is None  # per account
    assert limiter.admit("a", 0.96) is None


async def test_callback_is_posted_with_retries(make_emulator_app: Any) -> None:
    received: list[dict[str, Any]] = []

    async def receiver(request: Request) -> Response:
        received.append(await request.json())
        return Response(status_code=503 if len(received) < 3 else 200)

    callback_app = Starlette(routes=[Route("/hook", receiver, methods=["POST"])])
    app = make_emulator_app(callback_transport=httpx.ASGITransport(app=callback_app))
    emulator: Emulator = app.state.emulator
    async with _client(app) as client:
        response = await client.post(
            ADD, json={**BODY, "notifyUrl": "http://callbacks.test/hook", "callbackData": "batch-7"}
        )
        op = response.json()["operationId"]
        emulator.advance(1)
        await emulator.drain_callbacks()
        attempts = (await client.get("/_emulator/callbacks")).json()
    assert len(received) == 3
    assert received[-1]["callbackData"] == "batch-7"
    assert received[-1]["operationId"] == op
    assert received[-1]["participants"][0]["status"] == "ACCEPTED"
    assert [a["status"] for a in attempts] == [503, 503, 200]


@pytest.mark.parametrize("kind", ["500", "502", "503"])
async def test_queued_server_errors_are_general_error_and_not_processed(
    emulator_client: httpx.AsyncClient, emulator: Emulator, kind: str
) -> None:
    await emulator_client.post(
        "/_emulator/faults/next", json={"kind": kind, "operation": "add-flow-participants"}
    )
    response = await emulator_client.post(ADD, json=BODY)
    assert (response.status_code, response.json()) == (int(kind), GENERAL)
    assert emulator.operations == {}
    assert (await emulator_client.post(ADD, json=BODY)).status_code == 200


async def test_queued_429_and_operation_filter(emulator_client: httpx.AsyncClient) -> None:
    await emulator_client.post(
        "/_emulator/faults/next",
        json={"kind": "429", "count": 2, "operation": "get-flow-participants-added-report"},
    )
    assert (await emulator_client.post(ADD, json=BODY)).status_code == 200
    for _ in range(2):
        refused = await emulator_client.get(REPORT, params={"operationId": "x"})
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"
    assert (await emulator_client.get(REPORT, params={"operationId": "x"})).status_code == 404


async def test_drop_before_is_a_remote_protocol_error_and_nothing_happened(
    emulator_client: httpx.AsyncClient, emulator: Emulator
) -> None:
    await emulator_client.post("/_emulator/faults/next", json={"kind": "drop_before"})
    with pytest.raises(httpx.RemoteProtocolError):
        await emulator_client.post(ADD, json=BODY)
    assert emulator.operations == {}


async def test_drop_after_processes_then_drops(
    emulator_client: httpx.AsyncClient, emulator: Emulator
) -> None:
    await emulator_client.post("/_emulator/faults/next", json={"kind": "drop_after"})
    with pytest.raises(httpx.RemoteProtocolError):
        await emulator_client.post(ADD, json=BODY)
    assert len(emulator.operations) == 1


async def test_latency_beyond_read_timeout_is_a_read_timeout_after_processing(
    emulator_client: httpx.AsyncClient, emulator: Emulator
) -> None:
    await emulator_client.post(
        "/_emulator/faults/next", json={"kind": "latency", "latency_ms": 5000}
    )
    with pytest.raises(httpx.ReadTimeout):
        await emulator_client.post(ADD, json=BODY, timeout=httpx.Timeout(1.0))
    assert len(emulator.operations) == 1
    await emulator_client.post("/_emulator/faults/next", json={"kind": "latency", "latency_ms": 20})
    assert (
        await emulator_client.post(ADD, json=BODY, timeout=httpx.Timeout(1.0))
    ).status_code == 200


async def test_seeded_random_faults_are_reproducible(emulator_client: httpx.AsyncClient) -> None:
    async def run() -> list[str]:
        faults = FaultSettings(
            error_rate=0.3, error_statuses=[503], too_many_requests_rate=0.2, seed=42
        )
        await emulator_client.put("/_emulator/faults", content=faults.model_dump_json())
        outcomes = []
        for _ in range(30):
            response = await emulator_client.get(REPORT, params={"operationId": "x"})
            outcomes.append(str(response.status_code))
        return outcomes

    first = await run()
    assert first == await run()
    assert {"503", "429", "404"} <= set(first)


async def test_bad_fault_bodies_are_refused(emulator_client: httpx.AsyncClient) -> None:
    assert (
        await emulator_client.post("/_emulator/faults/next", json={"kind": "teapot"})
    ).status_code == 400
    assert (
        await emulator_client.put("/_emulator/faults", json={"error_rate": 2})
    ).status_code == 400


async def test_clock_advance_and_reset_over_http(
    emulator_client: httpx.AsyncClient, emulator: Emulator
) -> None:
    op = (await emulator_client.post(ADD, json=BODY)).json()["operationId"]
    await emulator_client.post("/_emulator/clock/advance", json={"seconds": 1})
    assert emulator.operations[op].results is not None
    assert (
        len((await emulator_client.get("/_emulator/flows/200000000000001/participants")).json())
        == 1
    )
    await emulator_client.post("/_emulator/reset")
    assert emulator.operations == {}
    assert (await emulator_client.get("/_emulator/people")).json() == []


async def test_recorded_exchanges_are_served_only_when_recording(make_emulator_app: Any) -> None:
    recording = make_emulator_app()
    async with _client(recording) as client:
        await client.post(ADD, json=BODY)
        listed = (await client.get("/_emulator/exchanges")).json()
    assert [(e["method"], e["path"], e["status"]) for e in listed] == [("POST", ADD, 200)]
    assert "authorization" not in listed[0]["requestHeaders"]
    silent = Emulator(
        recording.state.emulator.settings.model_copy(update={"record_exchanges": False})
    )
    app = Starlette(routes=inspection_routes())
    app.state.emulator = silent
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as c:
        assert (await c.get("/_emulator/exchanges")).status_code == 404
