"""Add participants, report and remove participant, in process, against the spec's rules."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from moments_pipeline.emulator import Emulator, FlowConfig
from moments_pipeline.emulator.testing import EmulatorTransport
from tests.emulator.conftest import ADD, FLOW, REPORT, email, phone

DAY = 86_400.0


async def _add(
    client: httpx.AsyncClient, participants: list[dict[str, Any]], path: str = ADD, **extra: Any
) -> str:
    response = await client.post(path, json={"participants": participants, **extra})
    assert response.status_code == 200, response.text
    return str(response.json()["operationId"])


async def _report(client: httpx.AsyncClient, op: str, flow: int = FLOW) -> httpx.Response:
    return await client.get(
        f"/moments/1/flows/{flow}/participants/report", params={"operationId": op}
    )


async def test_the_spec_example_goes_pending_then_accepted(
    emulator_client: httpx.AsyncClient, emulator: Emulator
) -> None:
    example = {
        "participants": [
            {"identifyBy": {"identifier": "370329180020364", "type": "FACEBOOK"}},
            {
                "identifyBy": {"identifier": "test@infobip.com", "type": "EMAIL"},
                "variables": {"orderNumber": 1},
            },
            {
                "identifyBy": {"identifier": "test2@infobip.com", "type": "EMAIL"},
                "person": {
                    "externalId": "optional_external_person_id",
                    "customAttributes": {"Contract Expiry": "2023-04-01", "Company": "Infobip"},
                    "contactInformation": {"email": [{"address": "test3@infobip.com"}]},
                },
            },
        ],
        "callbackData": "Callback Data",
    }
    response = await emulator_client.post(ADD, json=example)
    assert response.status_code == 200
    op = response.json()["operationId"]
    pending = (await _report(emulator_client, op)).json()
    assert pending["operationId"] == op
    assert pending["campaignId"] == FLOW
    assert pending["callbackData"] == "Callback Data"
    assert [p["status"] for p in pending["participants"]] == ["PENDING"] * 3
    assert pending["participants"][1]["identifyBy"] == {
        "identifier": "test@infobip.com",
        "type": "EMAIL",
    }
    emulator.advance(emulator.settings.processing_delay_s)
    done = (await _report(emulator_client, op)).json()
    assert [p["status"] for p in done["participants"]] == ["ACCEPTED"] * 3
    assert len(emulator.flows[FLOW].members) == 3


@pytest.mark.parametrize(
    ("participant", "reason"),
    [
        (email("not-an-email"), "REJECTED_INVALID_CONTACT"),
        (phone("+41793026727"), "REJECTED_INVALID_CONTACT"),
        (phone("0793026727"), "REJECTED_INVALID_CONTACT"),
        (
            email("a@x.com", contactInformation={"phone": [{"number": "41 79 abc"}]}),
            "REJECTED_INVALID_CONTACT",
        ),
        (email("a@x.com", customAttributes={"Shoe Size": 42}), "REJECTED_ATTRIBUTE_MISSED"),
    ],
)
async def test_rejection_reasons(
    emulator_client: httpx.AsyncClient, emulator: Emulator, participant: dict[str, Any], reason: str
) -> None:
    op = await _add(emulator_client, [participant, email("ok@x.com")])
    emulator.advance(1)
    results = (await _report(emulator_client, op)).json()["participants"]
    assert results[0] == {
        "identifyBy": participant["identifyBy"],
        "status": "REJECTED",
        "errorReason": reason,
    }
    assert results[1]["status"] == "ACCEPTED"


async def test_person_already_in_flow_is_rejected_unless_reentry(
    make_emulator_app: Any, emulator_clock: Any
) -> None:
    app = make_emulator_app(flows=[FlowConfig(campaign_id=7, allow_reentry=True)])
    async with httpx.AsyncClient(
        transport=EmulatorTransport(app),
        base_url="http://e",
        headers={"Authorization": "App test-key"},
    ) as client:
        for flow, expected in ((FLOW, "REJECTED"), (7, "ACCEPTED")):
            path = f"/moments/1/flows/{flow}/participants"
            await _add(client, [email("a@x.com")], path=path)
            app.state.emulator.advance(1)
            second = await _add(client, [email("A@x.com")], path=path)
            app.state.emulator.advance(1)
            [result] = (await _report(client, second, flow)).json()["participants"]
            assert result["status"] == expected
            if expected == "REJECTED":
                assert result["errorReason"] == "REJECTED_PERSON_IN_FLOW"


async def test_credits_run_out(make_emulator_app: Any) -> None:
    app = make_emulator_app(credits=2)
    async with httpx.AsyncClient(
        transport=EmulatorTransport(app),
        base_url="http://e",
        headers={"Authorization": "App test-key"},
    ) as client:
        op = await _add(client, [email(f"p{i}@x.com") for i in range(3)])
        app.state.emulator.advance(1)
        results = (await _report(client, op)).json()["participants"]
    assert [r["status"] for r in results] == ["ACCEPTED", "ACCEPTED", "REJECTED"]
    assert results[2]["errorReason"] == "REJECTED_NOT_ENOUGH_CREDITS"
    assert app.state.emulator.credits_left == 0


async def test_identifiers_repeated_in_a_request_merge(
    emulator_client: httpx.AsyncClient, emulator: Emulator
) -> None:
    await _add(emulator_client, [phone("41793026727")])
    emulator.advance(1)
    op = await _add(
        emulator_client,
        [
            email("jane@acme.com", externalId="e1"),
            email("other@acme.com", externalId="e1"),
            email("x@acme.com", contactInformation={"phone": [{"number": "41793026727"}]}),
        ],
    )
    emulator.advance(1)
    merges = (await emulator_client.get("/_emulator/merges")).json()
    reasons = [(m["reason"], m["operationId"]) for m in merges]
    assert ("IDENTIFIER_REPEATED_IN_REQUEST", op) in reasons
    people = (await emulator_client.get("/_emulator/people")).json()
    assert len(people) == 2
    merged = next(p for p in people if "e1" in p["externalIds"])
    assert merged["emails"] == ["jane@acme.com", "other@acme.com"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"participants": [email(f"{i}@x.com") for i in range(1200)]},
            "Number of participants must be between 1 and 1000. Received: 1200",
        ),
        ({"participants": []}, "Number of participants must be between 1 and 1000. Received: 0"),
        ({"notifyUrl": "http://127.0.0.1/x"}, "Mandatory fields are absent: [participants]"),
        (
            {
                "participants": [
                    email("a@x.com"),
                    {"identifyBy": {"identifier": "x", "type": "SMS"}},
                ]
            },
            "Field participants.[1].identifyBy.type must not be null or unsupported value",
        ),
        (
            {"participants": [{"identifyBy": {"identifier": "x"}}]},
            "Field participants.[0].identifyBy.type must not be null or unsupported value",
        ),
    ],
)
async def test_bad_requests_use_the_spec_messages(
    emulator_client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    response = await emulator_client.post(ADD, json=body)
    assert response.status_code == 400
    assert response.json() == {"errorCode": "400", "errorMessage": message}


@pytest.mark.parametrize("raw", [b"{not json", b"[1,2]", b'{"participants": {"a": 1}}'])
async def test_unreadable_body_is_the_problem_object(
    emulator_client: httpx.AsyncClient, raw: bytes
) -> None:
    response = await emulator_client.post(
        ADD, content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {
        "type": "about:blank",
        "title": "Bad Request",
        "status": 400,
        "detail": "Failed to read request",
        "instance": ADD,
    }


async def test_missing_or_inactive_flow_is_404_with_string_code(make_emulator_app: Any) -> None:
    app = make_emulator_app(flows=[FlowConfig(campaign_id=5, active=False)])
    async with httpx.AsyncClient(
        transport=EmulatorTransport(app),
        base_url="http://e",
        headers={"Authorization": "App test-key"},
    ) as client:
        for flow in (5, 6):
            response = await client.post(
                f"/moments/1/flows/{flow}/participants", json={"participants": [email("a@x.com")]}
            )
            assert response.status_code == 404
            assert response.json() == {
                "errorCode": "40401",
                "errorMessage": f"Could not find active flow for campaign {flow}",
            }


async def test_reports_expire_after_30_days_and_unknown_ids_are_404(
    emulator_client: httpx.AsyncClient, emulator: Emulator
) -> None:
    op = await _add(emulator_client, [email("a@x.com")])
    emulator.advance(30 * DAY - 5)
    assert (await _report(emulator_client, op)).status_code == 200
    emulator.advance(10)
    expired = await _report(emulator_client, op)
    assert expired.status_code == 404
    assert expired.json()["errorCode"] == "40403"
    assert (await _report(emulator_client, "no-such-operation")).status_code == 404
    other = await _add(emulator_client, [email("b@x.com")])
    assert (await _report(emulator_client, other, flow=10159347)).status_code == 404


async def test_remove_participant_outcomes(
    emulator_client: httpx.AsyncClient, emulator: Emulator
) -> None:
    remove = "/communication/1/flows/10159347/participants"
    await _add(
        emulator_client,
        [email("janewilliams@example.com", externalId="8edb24b5-0319-48cd-a1d9-1e8bc5d577ab")],
        path="/moments/1/flows/10159347/participants",
    )
    await _add(emulator_client, [phone("19123456789")])
    emulator.advance(1)

    async def delete(**params: str) -> httpx.Response:
        return await emulator_client.delete(remove, params=params)

    assert (await delete(externalId="8edb24b5-0319-48cd-a1d9-1e8bc5d577ab")).status_code == 200
    assert emulator.flows[10159347].members == set()
    not_in = await delete(email="JaneWilliams@example.com")
    assert (not_in.status_code, not_in.json()) == (
        400,
        {"errorCode": "40006", "errorMessage": "Person is not in the flow"},
    )
    assert (await delete(phone="19123456789")).json() == {
        "errorCode": "40006",
        "errorMessage": "Person is not in the flow",
    }
    missing = await delete(email="nobody@example.com")
    assert (missing.status_code, missing.json()) == (
        404,
        {"errorCode": "40402", "errorMessage": "Person not found"},
    )
    no_id = await delete()
    assert (no_id.status_code, no_id.json()["errorCode"]) == (400, "40001")
    flow = await emulator_client.delete(
        "/communication/1/flows/999/participants", params={"phone": "19123456789"}
    )
    assert (flow.status_code, flow.json()) == (
        404,
        {"errorCode": "40401", "errorMessage": "Could not find active flow for campaign 999"},
    )


async def test_deprecated_add_people_to_flow_is_not_implemented(emulator_settings: Any) -> None:
    # Deliberately outside the registry: 405 is not in the spec, and not meant to be.
    from moments_pipeline.emulator import create_app

    app = create_app(emulator_settings)
    async with httpx.AsyncClient(
        transport=EmulatorTransport(app),
        base_url="http://e",
        headers={"Authorization": "App test-key"},
    ) as client:
        response = await client.post(
            "/communication/1/flows/10159347/participants", json={"personData": {}}
        )
    assert response.status_code == 405


async def test_exchanges_are_recorded_without_authorization(
    emulator_client: httpx.AsyncClient, emulator: Emulator
) -> None:
    await _add(emulator_client, [email("a@x.com")])
    [exchange] = emulator.exchanges
    assert exchange.operation == "add-flow-participants"
    assert "authorization" not in exchange.request_headers
    assert (
        orjson.loads(exchange.request_body)["participants"][0]["identifyBy"]["identifier"]
        == "a@x.com"
    )
    assert exchange.status == 200
    log = (await emulator_client.get("/_emulator/requests")).json()
    assert log[0]["operation"] == "add-flow-participants"
    assert "test-key" not in orjson.dumps(log).decode()


async def test_malformed_campaign_ids_and_missing_operation_ids(
    emulator_client: httpx.AsyncClient,
) -> None:
    add = await emulator_client.post(
        "/moments/1/flows/abc/participants", json={"participants": [email("a@x.com")]}
    )
    assert (add.status_code, add.json()["detail"]) == (400, "Failed to read request")
    remove = await emulator_client.delete(
        "/communication/1/flows/abc/participants", params={"email": "a@x.com"}
    )
    assert (remove.status_code, remove.json()) == (
        400,
        {"errorCode": "40001", "errorMessage": "Bad request"},
    )
    # The report documents no 400: a missing operationId is "no such operation".
    for params in ({}, {"operationId": ""}):
        report = await emulator_client.get(REPORT, params=params)
        assert (report.status_code, report.json()["errorCode"]) == (404, "40403")
    foreign = await emulator_client.get(
        "/moments/1/flows/abc/participants/report", params={"operationId": "x"}
    )
    assert (foreign.status_code, foreign.json()["errorCode"]) == (404, "40403")


async def test_remove_from_an_inactive_flow_is_40005(make_emulator_app: Any) -> None:
    app = make_emulator_app(flows=[FlowConfig(campaign_id=77, active=False)])
    async with httpx.AsyncClient(
        transport=EmulatorTransport(app),
        base_url="http://e",
        headers={"Authorization": "App test-key"},
    ) as client:
        inactive = await client.delete(
            "/communication/1/flows/77/participants", params={"email": "a@x.com"}
        )
        flows = (await client.get("/_emulator/flows")).json()
    assert (inactive.status_code, inactive.json()) == (
        400,
        {"errorCode": "40005", "errorMessage": "Flow inactive"},
    )
    assert {
        "campaignId": 77,
        "name": None,
        "active": False,
        "allowReentry": False,
        "participants": 0,
    } in flows
