"""prepare_audience: dedupe, conflict policies, transitive chains, prior identities, accounting."""

from __future__ import annotations

import pandas as pd
import pytest

from moments_pipeline.identity import (
    IdentityInvariantError,
    PreparedAudience,
    participant_identities,
    prepare_audience,
)
from moments_pipeline.identity._participants import check_unique_identifiers
from tests.identity.helpers import COLUMNS, audience


def frame(rows: list[dict]) -> pd.DataFrame:
    data = pd.DataFrame(rows)
    for column in COLUMNS:
        if column not in data:
            data[column] = None
    if data["rid"].isna().all():
        data["rid"] = [f"r{i}" for i in range(len(data))]
    return data


def accounted(result: PreparedAudience, n: int) -> None:
    sent = [r for rows in result.participants["source_rows"] for r in rows]
    assert len(sent) + len(result.quarantine) == n
    assert set(sent).isdisjoint(result.quarantine["row_id"])
    assert len(set(sent) | set(result.quarantine["row_id"])) == n


def reasons(result: PreparedAudience) -> dict[str, str]:
    return dict(zip(result.quarantine["row_id"], result.quarantine["reason"], strict=True))


def test_exact_duplicates_collapse_into_one_participant_with_union_of_contacts() -> None:
    data = frame(
        [
            {
                "rid": "a",
                "email": "Jane@Acme.com",
                "cid": "1",
                "phone": "079 302 67 27",
                "first_name": "Jane",
            },
            {
                "rid": "b",
                "email": " jane@acme.com",
                "cid": "1",
                "email2": "j@home.ch",
                "first_name": "J.",
            },
        ]
    )
    result = prepare_audience(data, audience())
    assert len(result.participants) == 1
    p = result.participants.iloc[0]
    assert p["person_key"] == "EXTERNAL_ID:1"
    assert p["identify_by"] == "jane@acme.com"
    assert p["emails"] == ["jane@acme.com", "j@home.ch"]
    assert p["phones"] == ["41793026727"]
    assert p["source_rows"] == ["a", "b"]
    assert p["attr:firstName"] == "Jane"  # no recency column: the first row wins
    assert result.quarantine.empty
    accounted(result, 2)


def test_recency_column_picks_the_attributes_of_the_most_recent_row() -> None:
    data = frame(
        [
            {
                "rid": "a",
                "email": "x@acme.com",
                "cid": "1",
                "first_name": "Old",
                "updated": "2024-01-01",
            },
            {
                "rid": "b",
                "email": "x@acme.com",
                "cid": "1",
                "first_name": "New",
                "updated": "2025-01-01",
            },
            {"rid": "c", "email": "x@acme.com", "cid": "1", "first_name": "Null", "updated": None},
        ]
    )
    result = prepare_audience(data, audience(conflicts={"recency_column": "updated"}))
    assert result.participants["attr:firstName"].tolist() == ["New"]


def test_conflict_quarantines_every_row_of_the_component_with_shared_identifiers() -> None:
    data = frame(
        [
            {"rid": "a", "email": "a@x.com", "cid": "1", "phone": "+41793026727"},
            {"rid": "b", "email": "b@x.com", "cid": "2", "phone": "079 302 67 27"},
            {"rid": "c", "email": "c@x.com", "cid": "3"},
        ]
    )
    result = prepare_audience(data, audience())
    assert reasons(result) == {"a": "IDENTITY_CONFLICT", "b": "IDENTITY_CONFLICT"}
    # Identifiers in the detail are masked like everywhere else the pipeline shows them.
    assert set(result.quarantine["detail"]) == {"shared identifiers: PHONE 41*******27"}
    assert result.quarantine.set_index("row_id").loc["b", "phone"] == "079 302 67 27"
    assert result.participants["person_key"].tolist() == ["EXTERNAL_ID:3"]
    accounted(result, 3)


def test_transitive_chain_is_one_conflict() -> None:
    # a-b share an email, b-c a phone, c-d an email: four persons, one component.
    data = frame(
        [
            {"rid": "a", "email": "a@x.com", "cid": "1", "email2": "ab@x.com"},
            {"rid": "b", "email": "ab@x.com", "cid": "2", "phone": "+41793026727"},
            {
                "rid": "c",
                "email": "c@x.com",
                "cid": "3",
                "phone": "+41793026727",
                "email2": "cd@x.com",
            },
            {"rid": "d", "email": "cd@x.com", "cid": "4"},
            {"rid": "e", "email": "e@x.com", "cid": "5"},
        ]
    )
    result = prepare_audience(data, audience())
    assert reasons(result) == dict.fromkeys("abcd", "IDENTITY_CONFLICT")
    assert result.participants["source_rows"].tolist() == [["e"]]


def test_long_chain_does_not_recurse() -> None:
    n = 20000
    rows = [
        {"rid": f"r{i}", "email": f"p{i}@x.com", "cid": str(i), "email2": f"p{i + 1}@x.com"}
        for i in range(n)
    ]
    result = prepare_audience(frame(rows), audience())
    assert result.participants.empty
    assert result.counts["quarantined:IDENTITY_CONFLICT"] == n


def test_keep_most_recent_keeps_one_person_per_conflict() -> None:
    data = frame(
        [
            {"rid": "a", "email": "a@x.com", "cid": "1", "phone": "+41793026727", "ts": 10},
            {"rid": "b", "email": "b@x.com", "cid": "2", "phone": "+41793026727", "ts": 30},
            {"rid": "c", "email": "b@x.com", "cid": "2", "ts": 5},
            {"rid": "d", "email": "d@x.com", "cid": "3", "email2": "a@x.com", "ts": None},
        ]
    )
    config = audience(conflicts={"policy": "keep_most_recent", "recency_column": "ts"})
    result = prepare_audience(data, config)
    assert reasons(result) == {
        "a": "SUPERSEDED_BY_MORE_RECENT",
        "d": "SUPERSEDED_BY_MORE_RECENT",
    }
    assert "kept more recent person EXTERNAL_ID:2" in result.quarantine["detail"].iloc[0]
    assert result.participants["source_rows"].tolist() == [["b", "c"]]
    assert result.participants["phones"].tolist() == [["41793026727"]]
    accounted(result, 4)


def test_drop_shared_identifier_removes_shared_values_and_rechecks() -> None:
    data = frame(
        [
            {
                "rid": "a",
                "email": "a@x.com",
                "cid": "1",
                "phone": "+41793026727",
                "phone2": "+41793026728",
            },
            {"rid": "b", "email": "b@x.com", "cid": "2", "phone": "+41793026727"},
            {"rid": "c", "email": "c@x.com", "cid": "3", "email2": "b@x.com"},
            {"rid": "d", "email": "d@x.com", "cid": "4"},
        ]
    )
    result = prepare_audience(data, audience(conflicts={"policy": "drop_shared_identifier"}))
    # b's identifyBy is also c's second email: b cannot be sent without it.
    assert reasons(result) == {"b": "SHARED_IDENTIFY_BY"}
    by_key = result.participants.set_index("person_key")
    assert by_key.loc["EXTERNAL_ID:1", "phones"] == ["41793026728"]
    assert by_key.loc["EXTERNAL_ID:3", "emails"] == ["c@x.com"]
    dropped_values = result.dropped_values
    dropped = set(zip(dropped_values["row_id"], dropped_values["value_masked"], strict=True))
    # Masked; b is quarantined too, but what was dropped from its row is still recorded.
    assert dropped == {("a", "41*******27"), ("b", "41*******27"), ("c", "b***@x***.com")}
    assert set(result.dropped_values["reason"]) == {"SHARED_IDENTIFIER"}
    accounted(result, 4)


def test_invalid_rows_are_quarantined_and_bad_secondary_values_recorded() -> None:
    data = frame(
        [
            {"rid": "a", "email": None, "cid": "1"},
            {"rid": "b", "email": "not-an-email", "cid": "2"},
            {"rid": "c", "email": "c@x.com", "cid": "x" * 257},
            {"rid": "d", "email": "d@x.com", "cid": "   ", "phone": "12", "email2": "bad@"},
            {"rid": "e", "email": "   ", "cid": "5"},
        ]
    )
    result = prepare_audience(data, audience())
    assert reasons(result) == {
        "a": "MISSING_IDENTIFY_BY",
        "b": "INVALID_IDENTIFY_BY",
        "c": "INVALID_EXTERNAL_ID",
        "e": "MISSING_IDENTIFY_BY",
    }
    p = result.participants.iloc[0]
    assert p["person_key"] == "EMAIL:d@x.com" and pd.isna(p["external_id"])
    dropped = result.dropped_values.sort_values("column_name").to_dict("records")
    detail = {"email2": "not a valid email address", "phone": "not a valid phone number"}
    assert dropped == [
        {
            "row_id": "d",
            "column_name": "email2",
            "value_masked": "ba***@***",  # the raw value stays in the warehouse only
            "reason": "INVALID_EMAIL",
            "detail": detail["email2"],
        },
        {
            "row_id": "d",
            "column_name": "phone",
            "value_masked": "**",
            "reason": "INVALID_PHONE",
            "detail": detail["phone"] + " for its region",
        },
    ]
    assert result.counts["dropped_values"] == 2
    accounted(result, 5)


def test_prior_identities_quarantine_identifiers_sent_for_another_person() -> None:
    data = frame(
        [
            {"rid": "a", "email": "a@x.com", "cid": "1", "phone": "+41793026727"},
            {"rid": "b", "email": "a2@x.com", "cid": "1"},
            {"rid": "c", "email": "c@x.com", "cid": "3"},
            {"rid": "d", "email": "d@x.com", "cid": "4"},
        ]
    )
    prior = pd.DataFrame(
        {
            "kind": ["PHONE", "EMAIL", "EXTERNAL_ID"],
            "identifier": ["41793026727", "c@x.com", "4"],
            "person_key": ["EXTERNAL_ID:99", "EXTERNAL_ID:3", "EXTERNAL_ID:4"],
        }
    )
    result = prepare_audience(data, audience(), prior_identities=prior)
    assert reasons(result) == dict.fromkeys("ab", "IDENTIFIER_SENT_FOR_OTHER_PERSON")
    assert set(result.quarantine["detail"]) == {
        "PHONE 41*******27 already sent for profile EXTERNAL_ID:**, which holds externalId **,"
        " not *"
    }
    assert sorted(result.participants["person_key"]) == ["EXTERNAL_ID:3", "EXTERNAL_ID:4"]
    accounted(result, 4)


def test_without_row_id_column_rows_are_numbered() -> None:
    config = audience(source={"table": "s.t", "row_id_column": None})
    data = frame([{"email": "a@x.com", "cid": "1"}, {"email": None, "cid": "2"}])
    result = prepare_audience(data.drop(columns="rid"), config)
    assert result.participants["source_rows"].tolist() == [["0"]]
    assert result.quarantine["row_id"].tolist() == ["1"]


def test_bad_frames_are_refused_with_a_clear_error() -> None:
    data = frame([{"rid": "a", "email": "a@x.com"}, {"rid": "a", "email": "b@x.com"}])
    with pytest.raises(ValueError, match=r"source has no column\(s\) \['phone2'\]"):
        prepare_audience(data.drop(columns="phone2"), audience())


def test_non_contact_identify_by_with_sender() -> None:
    config = audience(
        identity={
            "identify_by": {"column": "email", "type": "LINE", "sender": "app-1"},
            "external_id": "cid",
            "emails": [],
            "phones": [],
        }
    )
    data = frame(
        [
            {"rid": "a", "email": "U123", "cid": "1"},
            {"rid": "b", "email": "U999", "cid": "1"},
            {"rid": "c", "email": "U555", "cid": "2"},
        ]
    )
    result = prepare_audience(data, config)
    assert reasons(result) == {"b": "UNSENDABLE_IDENTIFY_BY"}
    ids = participant_identities(result.participants)
    assert set(ids["kind"]) == {"LINE:app-1", "EXTERNAL_ID"}
    accounted(result, 3)


def test_invariant_check_refuses_a_shared_identifier() -> None:
    participants = pd.DataFrame(
        {
            "person_key": ["EXTERNAL_ID:1", "EXTERNAL_ID:2"],
            "identify_by_type": ["EMAIL", "EMAIL"],
            "identify_by": ["a@x.com", "b@x.com"],
            "sender": [None, None],
            "external_id": ["1", "2"],
            "emails": [["a@x.com"], ["b@x.com", "a@x.com"]],
            "phones": [[], []],
        }
    )
    with pytest.raises(IdentityInvariantError, match=r"a@x\.com"):
        check_unique_identifiers(participants, audience())


def test_a_value_repeated_across_columns_of_one_row_is_one_contact() -> None:
    data = frame(
        [
            {
                "rid": "a",
                "email": "a@x.com",
                "email2": " A@x.com",
                "cid": "1",
                "phone": "+41793026727",
                "phone2": "079 302 67 27",
            },
            {
                "rid": "b",
                "email": "b@x.com",
                "email2": "a2@x.com",
                "cid": "1",
                "phone2": "+41793026728",
            },
        ]
    )
    result = prepare_audience(data, audience())
    p = result.participants.iloc[0]
    assert p["emails"] == ["a@x.com", "b@x.com", "a2@x.com"]
    assert p["phones"] == ["41793026727", "41793026728"]
    assert result.dropped_values.empty
    accounted(result, 2)


def test_invariant_check_on_identifier_codes_refuses_a_code_of_two_persons() -> None:
    import numpy as np
    import pyarrow as pa

    from moments_pipeline.identity._participants import _check_codes

    values = pa.array(["a@x.com", "b@x.com", "c@x.com"], type=pa.large_string())
    # Person 0 carries codes 0 and 2 (2 twice), person 1 carries code 1: fine.
    _check_codes(np.array([0, 0, 0, 1]), np.array([0, 2, 2, 1]), values, audience())
    with pytest.raises(IdentityInvariantError, match=r"c@x\.com"):
        _check_codes(np.array([0, 1, 1]), np.array([2, 2, 1]), values, audience())


def test_without_prior_identities_each_person_anchors_its_own_profile() -> None:
    data = frame([{"rid": "a", "email": "a@x.com", "cid": "1"}, {"rid": "b", "email": "b@x.com"}])
    result = prepare_audience(data, audience())
    p = result.participants
    assert p["profile_anchor"].tolist() == p["person_key"].tolist()
    assert p["person_key"].tolist() == ["EXTERNAL_ID:1", "EMAIL:b@x.com"]
