"""Batching: deterministic ids, size limits, and refusal of shared identifiers."""

from __future__ import annotations

import pytest

from moments_pipeline.sync import (
    DuplicateIdentifierError,
    SyncParticipant,
    check_unique_identifiers,
    identifiers_of,
    plan_batches,
)


def _participant(i: int, email: str | None = None, phone: str | None = None) -> SyncParticipant:
    body = {
        "identifyBy": {"type": "EMAIL", "identifier": email or f"user{i}@example.com"},
        "person": {
            "externalId": f"ext-{i}",
            "contactInformation": {"phone": [{"number": phone or f"4179300{i:04d}"}]},
        },
    }
    return SyncParticipant(f"person-{i:05d}", body)


def test_batches_are_deterministic_and_bounded() -> None:
    people = [_participant(i) for i in range(2500)]
    first = plan_batches(people, audience="a", partition_key="p", campaign_id=1, batch_size=1000)
    again = plan_batches(
        list(reversed(people)), audience="a", partition_key="p", campaign_id=1, batch_size=1000
    )
    assert [len(b.participants) for b in first] == [1000, 1000, 500]
    assert [b.batch_id for b in first] == [b.batch_id for b in again]
    other_flow = plan_batches(people, audience="a", partition_key="p", campaign_id=2)
    assert {b.batch_id for b in first}.isdisjoint(b.batch_id for b in other_flow)


def test_batch_size_limits() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        plan_batches([], audience="a", partition_key="p", campaign_id=1, batch_size=1001)
    small = plan_batches(
        [_participant(i) for i in range(7)],
        audience="a",
        partition_key="p",
        campaign_id=1,
        batch_size=3,
    )
    assert [len(b.participants) for b in small] == [3, 3, 1]


def test_taken_ids_get_a_new_attempt() -> None:
    people = [_participant(i) for i in range(5)]
    (first,) = plan_batches(people, audience="a", partition_key="p", campaign_id=1)
    (retry,) = plan_batches(
        people, audience="a", partition_key="p", campaign_id=1, taken_ids={first.batch_id}
    )
    assert retry.attempt == 1
    assert retry.batch_id != first.batch_id


def test_identifiers_of_lists_every_identifier_once() -> None:
    body = {
        "identifyBy": {"type": "EMAIL", "identifier": "a@example.com"},
        "person": {
            "externalId": "x1",
            "contactInformation": {
                "email": [{"address": "a@example.com"}],
                "phone": [{"number": "41"}],
            },
        },
    }
    assert sorted(identifiers_of(body)) == [
        ("EMAIL", "a@example.com", True),
        ("EXTERNAL_ID", "x1", False),
        ("PHONE", "41", False),
    ]


def test_shared_identifier_is_refused_with_both_people_named() -> None:
    people = [_participant(1), _participant(2, phone="41793000001")]
    with pytest.raises(DuplicateIdentifierError) as info:
        check_unique_identifiers(people)
    message = str(info.value)
    assert "person-00001" in message and "person-00002" in message
    assert "41793000001" not in message  # masked


def test_email_case_does_not_hide_a_duplicate() -> None:
    people = [_participant(1, email="Same@Example.com"), _participant(2, email="same@example.com")]
    with pytest.raises(DuplicateIdentifierError):
        check_unique_identifiers(people)


def test_same_person_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="appears twice"):
        check_unique_identifiers([_participant(1), _participant(1)])
