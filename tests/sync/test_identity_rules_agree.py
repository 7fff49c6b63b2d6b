"""Preparation's prior-profile check and the engine's re-check under the lease are one rule.

Each case is a ledger (kind, identifier, key) and a few input rows. The rows go once through
``prepare_audience(prior_identities=ledger)`` (the identity layer) and once through
``prepare_audience`` without a ledger followed by ``check_against_prior`` (the sync layer, as
when audiences are prepared before another one sends). Both must quarantine or refuse the same
rows with the same reason and detail, and anchor the others on the same profiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pytest

from moments_pipeline.config import AudienceConfig, parse_audience
from moments_pipeline.identity import IDENTITY_COLUMNS, prepare_audience
from moments_pipeline.sync import participants_from_prepared
from moments_pipeline.sync._identity_check import check_against_prior, load_prior_profiles

MERGE, OTHER_ID = "WOULD_MERGE_PRIOR_PROFILES", "IDENTIFIER_SENT_FOR_OTHER_PERSON"
P1, P2, P3 = "+41793026701", "+41793026702", "+41793026703"
D1, D2, D3 = "41793026701", "41793026702", "41793026703"


def _spec(identify_by: dict[str, Any]) -> AudienceConfig:
    return parse_audience(
        {
            "name": "agree",
            "source": {"table": "s.t", "row_id_column": "rid"},
            "identity": {
                "identify_by": identify_by,
                "external_id": "cid",
                "emails": ["email", "email2"],
                "phones": ["phone"],
                "default_region": "CH",
            },
            "flow": {"campaign_id": 42},
        }
    )


BY_EMAIL = _spec({"column": "email", "type": "EMAIL"})
BY_FACEBOOK = _spec({"column": "fb", "type": "FACEBOOK", "sender": "page-1"})


@dataclass
class Case:
    ledger: list[tuple[str, str, str]]
    rows: list[dict[str, Any]]
    refused: dict[str, str]  # row id -> reason, the same on both sides
    anchors: dict[str, str] = field(default_factory=dict)  # person key -> anchor (updates)
    spec: AudienceConfig = BY_EMAIL


# Within a case no two rows share an identifier: they conflict only with the ledger.
CASES = {
    "case_different_emails": Case(
        ledger=[
            ("EMAIL", "Ana@X.com", "EXTERNAL_ID:1"),
            ("EMAIL", "BO@x.COM", "EMAIL:BO@x.COM"),
            ("EMAIL", "Cy@X.com", "EXTERNAL_ID:3"),
            ("EMAIL", "dee@X.COM", "EMAIL:dee@X.COM"),
        ],
        rows=[
            {"rid": "a", "email": "ana@x.com", "cid": "2"},  # Ana's profile holds externalId 1
            {"rid": "b", "email": "bo@x.com", "email2": "CY@x.com"},  # two profiles
            {"rid": "c", "email": "DEE@x.com", "email2": "new@x.com"},  # updates dee's
        ],
        refused={"a": OTHER_ID, "b": MERGE},
        anchors={"EMAIL:dee@x.com": "EMAIL:dee@X.COM"},
    ),
    "identifier_under_two_keys": Case(
        ledger=[
            ("EMAIL", "e@x.com", "EXTERNAL_ID:1"),
            ("EMAIL", "e@x.com", "EMAIL:e@x.com"),
            ("PHONE", D1, "EMAIL:e@x.com"),
            ("PHONE", D2, "EMAIL:e@x.com"),
            ("PHONE", D3, "EXTERNAL_ID:1"),
            ("EMAIL", "z@x.com", "EMAIL:z@x.com"),
        ],
        rows=[
            {"rid": "a", "email": "f@x.com", "phone": P1},  # one profile, anchor = smallest key
            {"rid": "b", "email": "z@x.com", "phone": P2},  # D2's profile and z's
            {"rid": "c", "email": "g@x.com", "cid": "3", "phone": P3},  # profile holds id 1
        ],
        refused={"b": MERGE, "c": OTHER_ID},
        anchors={"EMAIL:f@x.com": "EMAIL:e@x.com"},
    ),
    "external_id_inside_a_key": Case(
        ledger=[
            ("EMAIL", "k@x.com", "EXTERNAL_ID:5"),
            ("PHONE", D2, "EXTERNAL_ID:5"),
            ("PHONE", D3, "EXTERNAL_ID:5"),
        ],
        rows=[
            {"rid": "a", "email": "k@x.com", "cid": "6"},
            {"rid": "b", "email": "m@x.com", "cid": "5", "phone": P2},  # its own profile
            {"rid": "c", "email": "n@x.com", "phone": P3},  # no externalId: may update
        ],
        refused={"a": OTHER_ID},
        anchors={"EXTERNAL_ID:5": "EXTERNAL_ID:5", "EMAIL:n@x.com": "EXTERNAL_ID:5"},
    ),
    "transitive_profile_through_a_shared_identifier": Case(
        ledger=[
            ("EMAIL", "e1@x.com", "EXTERNAL_ID:1"),
            ("PHONE", D1, "EXTERNAL_ID:1"),
            ("PHONE", D1, "EMAIL:e2@x.com"),  # e2 and e4 reached profile 1 through the phone
            ("EMAIL", "e2@x.com", "EMAIL:e2@x.com"),
            ("EMAIL", "e4@x.com", "EMAIL:e2@x.com"),
            ("EXTERNAL_ID", "9", "EXTERNAL_ID:9"),
            ("EMAIL", "e3@x.com", "EXTERNAL_ID:9"),
            ("EMAIL", "e5@x.com", "EXTERNAL_ID:9"),
        ],
        rows=[
            {"rid": "a", "email": "e2@x.com", "email2": "e3@x.com"},  # profiles 1 and 9
            {"rid": "b", "email": "e4@x.com", "cid": "1", "phone": P3},  # its own, via e4
            {"rid": "c", "email": "e5@x.com", "cid": "7"},
            {"rid": "d", "email": "fresh@x.com", "cid": "8"},  # touches nothing
        ],
        refused={"a": MERGE, "c": OTHER_ID},
        anchors={"EXTERNAL_ID:1": "EMAIL:e2@x.com", "EXTERNAL_ID:8": "EXTERNAL_ID:8"},
    ),
    "channel_identifiers_of_two_senders": Case(
        spec=BY_FACEBOOK,
        ledger=[
            ("FACEBOOK:page-2", "fb1", "FACEBOOK:page-2:fb1"),  # another sender: unrelated
            ("EMAIL", "q@x.com", "FACEBOOK:page-2:fb1"),
            ("PHONE", D1, "FACEBOOK:page-2:fb1"),
            ("FACEBOOK:page-1", "fb2", "EXTERNAL_ID:4"),
            ("EMAIL", "w@x.com", "EXTERNAL_ID:4"),
        ],
        rows=[
            {"rid": "a", "fb": "fb1", "cid": "3"},  # new on page-1
            {"rid": "b", "fb": "fb2", "cid": "5"},  # page-1's fb2 is externalId 4's
            {"rid": "c", "fb": "fb3", "email": "q@x.com"},  # updates page-2's profile
            {"rid": "d", "fb": "fb5", "email": "w@x.com", "phone": P1},  # 4's and page-2's
        ],
        refused={"b": OTHER_ID, "d": MERGE},
        anchors={
            "EXTERNAL_ID:3": "EXTERNAL_ID:3",
            "FACEBOOK:page-1:fb3": "FACEBOOK:page-2:fb1",
        },
    ),
    "several_external_ids_on_one_profile": Case(
        ledger=[
            ("EXTERNAL_ID", "b", "EMAIL:s@x.com"),
            ("EXTERNAL_ID", "a", "EMAIL:s@x.com"),
            ("EMAIL", "s@x.com", "EMAIL:s@x.com"),
            *[("EMAIL", f"u{i}@x.com", f"EXTERNAL_ID:u{i}") for i in range(3)],
        ],
        rows=[
            {"rid": "a", "email": "s@x.com", "cid": "c"},  # the detail names the smallest id
            {"rid": "b", "email": "u0@x.com", "email2": "u1@x.com", "phone": None},
            {"rid": "c", "email": "u2@x.com", "cid": "u2"},  # its own profile
        ],
        refused={"a": OTHER_ID, "b": MERGE},
        anchors={"EXTERNAL_ID:u2": "EXTERNAL_ID:u2"},
    ),
}


def _frame(rows: list[dict[str, Any]], spec: AudienceConfig) -> pd.DataFrame:
    columns = ["rid", spec.identity.identify_by.column, "email", "email2", "cid", "phone"]
    return pd.DataFrame([{c: row.get(c) for c in dict.fromkeys(columns)} for row in rows])


def _through_identity(case: Case) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    prior = pd.DataFrame(case.ledger, columns=IDENTITY_COLUMNS)
    prepared = prepare_audience(_frame(case.rows, case.spec), case.spec, prior_identities=prior)
    q = prepared.quarantine
    refused = {
        str(r): (str(reason), str(detail))
        for r, reason, detail in zip(q["row_id"], q["reason"], q["detail"], strict=True)
    }
    p = prepared.participants
    return refused, dict(zip(p["person_key"], p["profile_anchor"], strict=True))


def _through_sync(case: Case) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    prepared = prepare_audience(_frame(case.rows, case.spec), case.spec)
    assert prepared.quarantine.empty, "the cases conflict only with the ledger"
    participants = participants_from_prepared(prepared, case.spec)
    keep, refused = check_against_prior(participants, load_prior_profiles(case.ledger))
    by_row = {
        row: (item.reason, item.detail) for item in refused for row in item.participant.source_rows
    }
    return by_row, {p.person_key: p.profile_anchor or p.person_key for p in keep}


@pytest.mark.parametrize("name", list(CASES))
def test_prepare_time_and_send_time_checks_agree(name: str) -> None:
    case = CASES[name]
    quarantined, prepared_anchors = _through_identity(case)
    refused, sent_anchors = _through_sync(case)
    assert {row: reason for row, (reason, _) in quarantined.items()} == case.refused
    assert refused == quarantined  # same rows, same reasons, same (masked) details
    assert sent_anchors == prepared_anchors
    for key, anchor in case.anchors.items():
        assert prepared_anchors[key] == anchor
    for _, detail in quarantined.values():
        for raw in ("x.com", "fb2", D1, D2):
            assert raw not in detail
