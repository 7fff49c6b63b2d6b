"""FlowParticipant dicts: the spec's shape, built from the participants frame."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from moments_pipeline.identity import prepare_audience, to_flow_participants
from tests.identity.helpers import audience

PREFIX = "900634339512041dd9c6cd5c4ad62d6cf43ea57e0548f5deeceb9f79d92b92f0."


def schema(openapi_spec: dict[str, Any], name: str) -> dict[str, Any]:
    return openapi_spec["components"]["schemas"][PREFIX + name]


def test_payload_follows_the_spec(openapi_spec: dict[str, Any]) -> None:
    config = audience(
        person={
            "attributes": {"firstName": "first_name", "birthDate": "born"},
            "custom_attributes": {"Contract Expiry": "expiry"},
            "tags": ["VIP"],
        },
        variables={"score": "score", "orderNumber": "order_no"},
    )
    data = pd.DataFrame(
        {
            "rid": ["a", "b"],
            "email": ["Jane@Acme.com", "bob@acme.com"],
            "email2": [None, "bob@home.ch"],
            "cid": ["1", None],
            "phone": ["079 302 67 27", None],
            "phone2": [None, None],
            "first_name": ["Jane", None],
            "born": pd.to_datetime(["1966-01-15", None]),
            "expiry": ["2018-06-01", None],
            "score": [np.float64(1.5), float("nan")],
            "order_no": np.array([1234567, 7], dtype=np.int64),
        }
    )
    result = prepare_audience(data, config)
    payload = to_flow_participants(result.participants, config)
    assert payload == [
        {
            "identifyBy": {"identifier": "jane@acme.com", "type": "EMAIL"},
            "person": {
                "externalId": "1",
                "firstName": "Jane",
                "birthDate": "1966-01-15",
                "tags": ["VIP"],
                "customAttributes": {"Contract Expiry": "2018-06-01"},
                "contactInformation": {
                    "email": [{"address": "jane@acme.com"}],
                    "phone": [{"number": "41793026727"}],
                },
            },
            "variables": {"score": 1.5, "orderNumber": 1234567},
        },
        {
            "identifyBy": {"identifier": "bob@acme.com", "type": "EMAIL"},
            "person": {
                "tags": ["VIP"],
                "contactInformation": {
                    "email": [{"address": "bob@acme.com"}, {"address": "bob@home.ch"}]
                },
            },
            "variables": {"orderNumber": 7},
        },
    ]
    assert type(payload[0]["variables"]["orderNumber"]) is int
    participant = schema(openapi_spec, "FlowParticipant")
    person = schema(openapi_spec, "IamPersonV2")["properties"]
    contacts = schema(openapi_spec, "IamPersonContactsV2")["properties"]
    identify_by = schema(openapi_spec, "WebhookPersonUniqueField")["properties"]
    for item in payload:
        assert set(item) <= set(participant["properties"])
        assert set(item["identifyBy"]) <= set(identify_by)
        assert set(item["person"]) <= set(person)
        assert set(item["person"]["contactInformation"]) <= set(contacts)
        assert all(not person[k].get("readOnly") for k in item["person"])


def test_sender_is_sent_for_non_contact_types() -> None:
    config = audience(
        identity={
            "identify_by": {"column": "email", "type": "FACEBOOK", "sender": "page-1"},
            "emails": [],
            "phones": [],
        }
    )
    data = pd.DataFrame(
        {"rid": ["a"], "email": ["psid-1"], "cid": ["1"], "first_name": ["A"], "score": [1]}
    )
    payload = to_flow_participants(prepare_audience(data, config).participants, config)
    assert payload[0]["identifyBy"] == {
        "identifier": "psid-1",
        "type": "FACEBOOK",
        "sender": "page-1",
    }
    assert payload[0]["person"]["externalId"] == "1"
