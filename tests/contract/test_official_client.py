"""Infobip's official Python client (infobip-api-python-client 6.0.0) against the SERVED emulator.

All seven live operations go over a real loopback socket and every answer is parsed into the
client's own models; the assertions are on the parsed values. The client types the
submit-form-data body as ``Dict[str, Dict[str, Any]]`` (a map of objects), which cannot carry
plain field values such as ``"email": "a@b.co"``, so that one call is sent raw through the
client's own ``ApiClient`` (``param_serialize`` + ``call_api``) and its answer parsed with the
client's ``response_deserialize`` into ``FormsStatusResponse``, as the submit method would.
Error answers go through the client's exception path too (get-form 404, add 404 40401).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from infobip_api_client import ApiClient, Configuration
from infobip_api_client.api.flow_api import FlowApi
from infobip_api_client.api.forms_api import FormsApi
from infobip_api_client.exceptions import NotFoundException
from infobip_api_client.models.flow_add_flow_participants_request import (
    FlowAddFlowParticipantsRequest,
)
from infobip_api_client.models.flow_participant import FlowParticipant
from infobip_api_client.models.flow_person import FlowPerson
from infobip_api_client.models.flow_person_unique_field import FlowPersonUniqueField
from infobip_api_client.models.flow_person_unique_field_type import FlowPersonUniqueFieldType
from infobip_api_client.models.forms_status import FormsStatus
from infobip_api_client.models.forms_status_response import FormsStatusResponse

from moments_pipeline.emulator.testing import ServedEmulator
from tests.fixtures.emulator import TEST_API_KEY

pytestmark = pytest.mark.served

CAMPAIGN_ID = 200000000000001  # the spec's example flow, seeded by the emulator
NEWSLETTER = "f23f0f7c-9898-4feb-8f21-5afe2c29db7e"
EMAIL_ONLY = "7370b24c-9788-4a52-a6a4-047cecbe2df2"


@pytest.fixture
def api_client(served_emulator: ServedEmulator) -> Iterator[ApiClient]:
    config = Configuration(
        host=served_emulator.base_url,
        api_key=TEST_API_KEY,  # 6.0.0 adds the "App " prefix itself
    )
    with ApiClient(config) as client:
        yield client


def _advance_clock(served: ServedEmulator, seconds: float) -> None:
    # Through the server's own loop: the emulator state belongs to the serving thread.
    response = httpx.post(f"{served.base_url}/_emulator/clock/advance", json={"seconds": seconds})
    response.raise_for_status()


def test_flow_operations_parse_into_the_official_models(api_client, served_emulator):
    flow = FlowApi(api_client)
    request = FlowAddFlowParticipantsRequest(
        participants=[
            FlowParticipant(
                identify_by=FlowPersonUniqueField(
                    identifier="ann@example.com", type=FlowPersonUniqueFieldType.EMAIL
                ),
                person=FlowPerson(first_name="Ann"),
            ),
            FlowParticipant(
                identify_by=FlowPersonUniqueField(
                    identifier="41793026727", type=FlowPersonUniqueFieldType.PHONE
                )
            ),
        ],
        callback_data="batch-1",
    )
    added = flow.add_flow_participants(CAMPAIGN_ID, request)
    assert len(added.operation_id) == 36

    _advance_clock(served_emulator, 5)
    report = flow.get_flow_participants_added_report(CAMPAIGN_ID, added.operation_id)
    assert (report.operation_id, report.campaign_id) == (added.operation_id, CAMPAIGN_ID)
    assert report.callback_data == "batch-1"
    outcomes = {
        p.identify_by.identifier: (p.status.value, p.error_reason) for p in report.participants
    }
    assert outcomes == {"ann@example.com": ("ACCEPTED", None), "41793026727": ("ACCEPTED", None)}
    assert {p.identify_by.type for p in report.participants} == {
        FlowPersonUniqueFieldType.EMAIL,
        FlowPersonUniqueFieldType.PHONE,
    }

    # remove-people-from-flow answers 200 without a body; the client returns None for it.
    assert flow.remove_people_from_flow(CAMPAIGN_ID, email="ann@example.com") is None
    members = httpx.get(f"{served_emulator.base_url}/_emulator/flows/{CAMPAIGN_ID}/participants")
    remaining = [(p["emails"], p["phones"]) for p in members.json()]
    assert remaining == [([], ["41793026727"])]


def test_forms_operations_parse_into_the_official_models(api_client, served_emulator):
    forms = FormsApi(api_client)
    listed = forms.get_forms(offset=0, limit=10, form_status=FormsStatus.ACTIVE)
    assert (listed.offset, listed.limit, listed.total) == (0, 10, 2)
    assert [f.id for f in listed.forms] == [NEWSLETTER, EMAIL_ONLY]

    form = forms.get_form(NEWSLETTER)
    assert (form.name, form.form_type.value, form.form_status.value) == (
        "Test Form",
        "OPT_IN",
        "ACTIVE",
    )
    assert form.resubmit_enabled is True
    # The client parses the examples' "+0000" offset into an aware datetime.
    assert form.created_at == datetime(2022, 7, 11, 6, 38, 12, 757_000, tzinfo=UTC)
    email = next(e for e in form.elements if e.field_id == "email")
    assert (email.component.value, email.person_field, email.is_required) == (
        "EMAIL",
        "email",
        True,
    )
    assert email.validation_rules.max_length == 1000
    first_name = form.elements[0]
    assert "\n" in first_name.validation_rules.forbidden_symbols
    assert form.elements[-1].component.value == "SUBMIT_BUTTON"

    viewed = forms.increment_view_count(NEWSLETTER)
    assert isinstance(viewed, FormsStatusResponse) and viewed.status == "OK"

    # Raw through the client's own ApiClient: its typed submit_form_data cannot send strings.
    serialized = api_client.param_serialize(
        method="POST",
        resource_path="/forms/1/forms/{id}/data",
        path_params={"id": NEWSLETTER},
        header_params={
            "Content-Type": "application/json",
            "Accept": "application/json",
            "ib-submission-source": "official-client",
            "ib-submission-form-campaign": "contract",
        },
        body={"first_name": "Ann", "email": "ann@example.com", "company": "Acme"},
        auth_settings=["APIKeyHeader"],
    )
    raw = api_client.call_api(*serialized)
    raw.read()
    submitted = api_client.response_deserialize(
        response_data=raw, response_types_map={"200": "FormsStatusResponse"}
    ).data
    assert isinstance(submitted, FormsStatusResponse) and submitted.status == "OK"

    views = httpx.get(f"{served_emulator.base_url}/_emulator/forms/{NEWSLETTER}/views").json()
    assert views["views"] == 1
    subs = httpx.get(f"{served_emulator.base_url}/_emulator/forms/{NEWSLETTER}/submissions").json()
    assert [(s["source"], s["formCampaign"], s["fields"]["email"]) for s in subs] == [
        ("official-client", "contract", "ann@example.com")
    ]


def test_error_answers_parse_through_the_clients_exception_path(api_client):
    with pytest.raises(NotFoundException) as not_found:
        FormsApi(api_client).get_form("no-such-form")
    assert not_found.value.status == 404
    envelope = not_found.value.data
    assert envelope is not None, "the client did not parse the 404 body"
    assert envelope.request_error.service_exception.message_id == "NOT_FOUND"

    request = FlowAddFlowParticipantsRequest(
        participants=[
            FlowParticipant(
                identify_by=FlowPersonUniqueField(
                    identifier="ann@example.com", type=FlowPersonUniqueFieldType.EMAIL
                )
            )
        ]
    )
    with pytest.raises(NotFoundException) as no_flow:
        FlowApi(api_client).add_flow_participants(999, request)
    # The client's FlowOldExceptionResponse types errorCode as a strict integer, so the
    # examples' string code (what the live service sends, and the emulator) does not parse
    # into it: the client raises its NotFoundException with the body text and no model.
    assert (no_flow.value.status, no_flow.value.data) == (404, None)
    assert json.loads(no_flow.value.body) == {
        "errorCode": "40401",
        "errorMessage": "Could not find active flow for campaign 999",
    }
