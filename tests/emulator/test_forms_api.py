"""The emulator's Forms API over HTTP (in process): list, get, views, submissions."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from moments_pipeline.emulator.forms_seed import complete_form
from moments_pipeline.emulator.testing import EmulatorTransport
from tests.fixtures.emulator import TEST_API_KEY

NEWSLETTER = "f23f0f7c-9898-4feb-8f21-5afe2c29db7e"
EMAIL_ONLY = "7370b24c-9788-4a52-a6a4-047cecbe2df2"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
NOT_FOUND = {
    "requestError": {"serviceException": {"messageId": "NOT_FOUND", "text": "Form is not found"}}
}
FORBIDDEN = {
    "requestError": {
        "serviceException": {
            "messageId": "FORBIDDEN",
            "text": "Form is not submittable using the API",
        }
    }
}


def _test_forms() -> list[dict[str, Any]]:
    rules = complete_form(
        {
            "id": "rules-form",
            "name": "Rules",
            "formType": "OPT_OUT",
            "createdAt": "2023-01-01T00:00:00.000+0000",
            "elements": [
                {
                    "component": "EMAIL",
                    "fieldId": "email",
                    "personField": "email",
                    "isRequired": False,
                },
                {
                    "component": "MSISDN",
                    "fieldId": "mobile",
                    "personField": "phone",
                    "isRequired": False,
                },
                {
                    "component": "NUMBER",
                    "fieldId": "age",
                    "isRequired": False,
                    "validationRules": {"minValue": "18", "maxValue": "120"},
                },
                {
                    "component": "DATE",
                    "fieldId": "born",
                    "personField": "birthDate",
                    "isRequired": False,
                    "validationRules": {"datePattern": "dd/MM/yyyy"},
                },
                {
                    "component": "TEXT",
                    "fieldId": "city",
                    "personField": "city",
                    "isRequired": False,
                },
                {"component": "SUBMIT_BUTTON", "label": "Go"},
            ],
        },
        now=NOW,
    )
    disabled = complete_form(
        {
            "id": "disabled-form",
            "formStatus": "DISABLED",
            "createdAt": "2021-01-01T00:00:00.000+0000",
        },
        now=NOW,
    )
    once = complete_form(
        {
            "id": "once-form",
            "resubmitEnabled": False,
            "formStatus": "DRAFT",
            "createdAt": "2020-01-01T00:00:00.000+0000",
            "elements": [
                {
                    "component": "EMAIL",
                    "fieldId": "email",
                    "personField": "email",
                    "isRequired": True,
                }
            ],
        },
        now=NOW,
    )
    return [rules, disabled, once]


@pytest.fixture
def forms_app(make_emulator_app):
    # Built through the emulator fixtures, so the contract fixture validates every answer.
    return make_emulator_app(forms=_test_forms())


@pytest.fixture
async def client(forms_app) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"App {TEST_API_KEY}"}
    transport = EmulatorTransport(forms_app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://emulator.test", headers=headers
    ) as c:
        yield c


@pytest.fixture
def state(forms_app):
    return forms_app.state.emulator


def _example(spec: dict[str, Any], path: str, name: str) -> Any:
    content = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    return copy.deepcopy(content["examples"][name]["value"])


def _errors(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 400, response.text
    details = response.json()["requestError"]["serviceException"]
    assert (details["messageId"], details["text"]) == ("BAD_REQUEST", "Bad request")
    return details.get("validationErrors", {})


# -- get-forms --------------------------------------------------------------------------------


async def test_list_defaults_match_the_spec_example_order_and_paging(client, openapi_spec):
    response = await client.get("/forms/1/forms")
    assert response.status_code == 200
    body = response.json()
    assert (body["offset"], body["limit"], body["total"]) == (0, 25, 5)
    assert [f["id"] for f in body["forms"]] == [
        "rules-form",
        NEWSLETTER,
        EMAIL_ONLY,
        "disabled-form",
        "once-form",
    ]
    example = _example(openapi_spec, "/forms/1/forms", "Response example")
    assert body["forms"][2] == example["forms"][1]


async def test_list_pages_with_offset_and_limit(client):
    body = (await client.get("/forms/1/forms", params={"offset": 1, "limit": 2})).json()
    assert [f["id"] for f in body["forms"]] == [NEWSLETTER, EMAIL_ONLY]
    assert (body["offset"], body["limit"], body["total"]) == (1, 2, 5)
    beyond = (await client.get("/forms/1/forms", params={"offset": 10, "limit": 100})).json()
    assert (beyond["forms"], beyond["limit"], beyond["total"]) == ([], 100, 5)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "9999999999"}, "offset"),
        ({"formType": "CSAT"}, "formType"),
        ({"formStatus": "active"}, "formStatus"),
    ],
)
async def test_list_rejects_bad_parameters(client, params, field):
    assert list(_errors(await client.get("/forms/1/forms", params=params))) == [field]


async def test_list_filters_by_type_and_status(client):
    opt_out = (await client.get("/forms/1/forms", params={"formType": "OPT_OUT"})).json()
    assert [f["id"] for f in opt_out["forms"]] == ["rules-form"]
    disabled = (await client.get("/forms/1/forms", params={"formStatus": "DISABLED"})).json()
    assert [f["id"] for f in disabled["forms"]] == ["disabled-form"]
    both = {"formType": "OPT_IN", "formStatus": "ACTIVE"}
    active_opt_in = (await client.get("/forms/1/forms", params=both)).json()
    assert [f["id"] for f in active_opt_in["forms"]] == [NEWSLETTER, EMAIL_ONLY]
    assert active_opt_in["total"] == 2


# -- get-form / views -------------------------------------------------------------------------


async def test_get_form_is_the_spec_example(client, openapi_spec):
    response = await client.get(f"/forms/1/forms/{NEWSLETTER}")
    assert response.status_code == 200
    assert response.json() == _example(openapi_spec, "/forms/1/forms/{id}", "Company Newsletter")
    assert response.json()["createdAt"] == "2022-07-11T06:38:12.757+0000"


async def test_unknown_form_answers_404_everywhere(client):
    assert (await client.get("/forms/1/forms/nope")).json() == NOT_FOUND
    for suffix in ("views", "data"):
        response = await client.post(f"/forms/1/forms/nope/{suffix}", json={"email": "a@b.co"})
        assert (response.status_code, response.json()) == (404, NOT_FOUND)


async def test_view_counter(client, state):
    for _ in range(3):
        response = await client.post(f"/forms/1/forms/{EMAIL_ONLY}/views")
        assert (response.status_code, response.json()) == (200, {"status": "OK"})
    assert state.form_views[EMAIL_ONLY] == 3
    assert state.form_views[NEWSLETTER] == 0
    seen = (await client.get(f"/_emulator/forms/{EMAIL_ONLY}/views")).json()
    assert seen["views"] == 3


# -- submit-form-data: content types and recording --------------------------------------------


async def test_json_submission_creates_a_profile_and_records_headers(client, state):
    headers = {"ib-submission-source": "landing-page", "ib-submission-form-campaign": "spring"}
    data = {
        "first_name": "Ann",
        "last_name": "Lee",
        "company": "Acme",
        "country": "CH",
        "email": "Ann.Lee@Example.com",
        "offer_id": "o-7",
        "utm_source": "mail",
    }
    response = await client.post(f"/forms/1/forms/{NEWSLETTER}/data", json=data, headers=headers)
    assert (response.status_code, response.json()) == (200, {"status": "OK"})
    (submission,) = state.form_submissions
    assert submission["formId"] == NEWSLETTER
    assert (submission["source"], submission["formCampaign"]) == ("landing-page", "spring")
    assert submission["contentType"] == "application/json"
    assert submission["fields"]["email"] == "ann.lee@example.com"
    assert submission["fields"]["offer_id"] == "o-7"
    assert submission["ignoredFields"] == ["utm_source"]
    assert submission["time"] == state.now()
    profile = state.people.get(submission["profileId"]).to_dict()
    assert profile["emails"] == ["ann.lee@example.com"]
    assert profile["origin"] == "FORMS"
    assert profile["attributes"] == {
        "firstName": "Ann",
        "lastName": "Lee",
        "country": "CH",
        "customAttributes": {"267ce64a-1a26-4326-9036-6384696f39c8": "Acme"},
    }
    listed = (await client.get(f"/_emulator/forms/{NEWSLETTER}/submissions")).json()
    assert [s["id"] for s in listed] == [submission["id"]]


async def test_urlencoded_submission(client, state):
    response = await client.post(
        "/forms/1/forms/rules-form/data",
        data={
            "email": "u@example.com",
            "mobile": "+41793026727",
            "age": "30",
            "born": "28/02/1990",
        },
    )
    assert response.status_code == 200, response.text
    (submission,) = state.form_submissions
    assert submission["contentType"] == "application/x-www-form-urlencoded"
    assert submission["fields"] == {
        "email": "u@example.com",
        "mobile": "41793026727",
        "age": 30,
        "born": "1990-02-28",
    }
    assert (submission["source"], submission["formCampaign"]) == (None, None)
    profile = state.people.get(submission["profileId"]).to_dict()
    assert (profile["emails"], profile["phones"]) == (["u@example.com"], ["41793026727"])
    assert profile["attributes"] == {"birthDate": "1990-02-28"}


async def test_multipart_submission(client, state):
    files = {"email": (None, "m@example.com"), "city": (None, "Zagreb")}
    response = await client.post(
        "/forms/1/forms/rules-form/data", files=files, headers={"ib-submission-source": "kiosk"}
    )
    assert response.status_code == 200, response.text
    (submission,) = state.form_submissions
    assert submission["contentType"] == "multipart/form-data"
    assert submission["fields"] == {"email": "m@example.com", "city": "Zagreb"}
    assert submission["source"] == "kiosk"
    assert state.people.get(submission["profileId"]).attributes == {"city": "Zagreb"}


async def test_multipart_file_upload_is_refused(client, state):
    files = {"email": ("cv.txt", b"a@b.co", "text/plain")}
    response = await client.post("/forms/1/forms/rules-form/data", files=files)
    assert _errors(response) == {"email": ["file uploads are not accepted"]}
    assert state.form_submissions == []


@pytest.mark.parametrize(
    ("content", "content_type", "field"),
    [
        (b"email=a@b.co", "text/plain", "Content-Type"),
        (b"", None, "Content-Type"),
        (b'["a@b.co"]', "application/json", "body"),
        (b"{not json", "application/json", None),
    ],
)
async def test_unreadable_bodies_answer_400(client, state, content, content_type, field):
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post(
        f"/forms/1/forms/{EMAIL_ONLY}/data", content=content, headers=headers
    )
    errors = _errors(response)
    assert list(errors) == ([field] if field else [])
    assert state.form_submissions == []


# -- submit-form-data: validation rules, 403 ---------------------------------------------------


@pytest.mark.parametrize(
    ("form_id", "data", "expected"),
    [
        (NEWSLETTER, {"first_name": "Ann"}, {"email": ["must not be blank"]}),
        (
            NEWSLETTER,
            {"email": "a@b.co", "last_name": "L" * 256},
            {"last_name": ["must be at most 255 characters"]},
        ),
        (
            NEWSLETTER,
            {"email": "a@b.co", "first_name": "Ann;"},
            {"first_name": ["must not contain ';'"]},
        ),
        (
            NEWSLETTER,
            {"email": "ann(at)example.com"},
            {"email": ["does not match the required format"]},
        ),
        (
            "rules-form",
            {"mobile": "079 302 67 27"},
            {"mobile": ["must be a phone number in international format"]},
        ),
        ("rules-form", {"age": 17}, {"age": ["must be at least 18"]}),
        ("rules-form", {"age": "old"}, {"age": ["must be a number"]}),
        ("rules-form", {"born": "1990-02-28"}, {"born": ["must be a date formatted dd/MM/yyyy"]}),
    ],
)
async def test_each_rule_answers_400_with_validation_errors(client, state, form_id, data, expected):
    response = await client.post(f"/forms/1/forms/{form_id}/data", json=data)
    assert _errors(response) == expected
    assert state.form_submissions == []
    assert state.people.profiles == {}


async def test_a_form_with_a_broken_pattern_answers_500_and_records_nothing(client, state):
    rules = {"pattern": "([a-z]+"}
    broken = {"component": "TEXT", "fieldId": "code", "isRequired": True, "validationRules": rules}
    state.forms["rules-form"]["elements"].insert(0, broken)
    response = await client.post("/forms/1/forms/rules-form/data", json={"code": "abc"})
    assert response.status_code == 500
    assert response.json()["requestError"]["serviceException"]["messageId"] == "GENERAL_ERROR"
    assert state.form_submissions == []


async def test_a_form_that_is_not_active_answers_403(client, state):
    response = await client.post("/forms/1/forms/disabled-form/data", json={})
    assert (response.status_code, response.json()) == (403, FORBIDDEN)
    draft = await client.post("/forms/1/forms/once-form/data", json={"email": "a@b.co"})
    assert (draft.status_code, draft.json()) == (403, FORBIDDEN)
    assert state.form_submissions == []


# -- People: update and merge through personField, resubmission ---------------------------------


async def test_submissions_update_and_merge_profiles_through_person_fields(client, state):
    url = "/forms/1/forms/rules-form/data"
    assert (
        await client.post(url, json={"email": "p@example.com", "city": "Split"})
    ).status_code == 200
    assert (await client.post(url, json={"mobile": "385911234567"})).status_code == 200
    assert len(state.people.profiles) == 2
    # Same email again: the profile is updated, not duplicated.
    assert (
        await client.post(url, json={"email": "P@example.com", "city": "Zadar"})
    ).status_code == 200
    assert len(state.people.profiles) == 2
    # One submission naming both identifiers joins the two profiles (the spec's MERGE rule).
    both = {"email": "p@example.com", "mobile": "+385911234567"}
    assert (await client.post(url, json=both)).status_code == 200
    (profile,) = state.people.profiles.values()
    assert (profile.to_dict()["emails"], profile.to_dict()["phones"]) == (
        ["p@example.com"],
        ["385911234567"],
    )
    assert profile.attributes["city"] == "Zadar"
    (merge,) = state.people.merges
    assert merge.origin == "FORMS"
    assert merge.operation_id == state.form_submissions[-1]["id"]
    assert [s["profileId"] for s in state.form_submissions][-1] == profile.id


async def test_submission_without_identifier_is_recorded_without_a_profile(client, state):
    response = await client.post(f"/forms/1/forms/{EMAIL_ONLY}/data", json={})
    assert response.status_code == 200
    assert state.form_submissions[0]["profileId"] is None
    assert state.people.profiles == {}


async def test_resubmission_of_a_form_that_forbids_it_is_refused(client, state):
    state.forms["once-form"]["formStatus"] = "ACTIVE"
    url = "/forms/1/forms/once-form/data"
    assert (await client.post(url, json={"email": "o@example.com"})).status_code == 200
    again = await client.post(url, json={"email": "O@Example.com"})
    assert _errors(again) == {"resubmitEnabled": ["this form was already submitted by this person"]}
    assert (await client.post(url, json={"email": "other@example.com"})).status_code == 200
    assert len(state.form_submissions) == 2
    # A form that allows resubmission takes the same person twice.
    for _ in range(2):
        ok = await client.post(f"/forms/1/forms/{EMAIL_ONLY}/data", json={"email": "o@example.com"})
        assert ok.status_code == 200


# -- persistence --------------------------------------------------------------------------------


async def test_views_submissions_and_profiles_survive_a_restart(make_emulator_app, tmp_path):
    state_path = tmp_path / "state.jsonl"
    headers = {"Authorization": f"App {TEST_API_KEY}"}
    first = make_emulator_app(forms=_test_forms(), state_path=state_path)
    async with httpx.AsyncClient(
        transport=EmulatorTransport(first), base_url="http://emulator.test", headers=headers
    ) as c:
        assert (await c.post(f"/forms/1/forms/{EMAIL_ONLY}/views")).status_code == 200
        data = {"email": "keep@example.com", "born": "01/02/1990", "age": 40}
        assert (await c.post("/forms/1/forms/rules-form/data", json=data)).status_code == 200
    before = first.state.emulator
    expected_submissions = copy.deepcopy(before.form_submissions)
    # No clean shutdown: the journal written per request must be enough (as after kill -9).
    again = make_emulator_app(forms=_test_forms(), state_path=state_path).state.emulator
    assert again.form_views[EMAIL_ONLY] == 1
    assert again.form_submissions == expected_submissions
    profile = again.people.get(expected_submissions[0]["profileId"]).to_dict()
    assert profile["emails"] == ["keep@example.com"]
    assert profile["attributes"] == {"birthDate": "1990-02-01"}
    await before.aclose()
    await again.aclose()
