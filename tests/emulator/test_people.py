"""The People store applies each merge sentence of the spec."""

from __future__ import annotations

import pytest

from moments_pipeline.emulator.clock import ManualClock
from moments_pipeline.emulator.people import (
    IDENTIFIER_REPEATED_IN_REQUEST,
    MULTIPLE_PROFILES_MATCHED,
    Identifier,
    PeopleStore,
)


@pytest.fixture
def store() -> PeopleStore:
    return PeopleStore(ManualClock().now)


def _up(store: PeopleStore, *ids: Identifier, scope_key: str | None = None, **attrs: object) -> int:
    scope = store.request_scope(scope_key) if scope_key else None
    return store.upsert(ids, attrs, origin="API", operation_id="op", scope=scope)


def test_new_identifiers_create_a_profile(store: PeopleStore) -> None:
    a = _up(store, Identifier.email("a@x.com"))
    b = _up(store, Identifier.email("b@x.com"))
    assert a != b
    assert len(store.profiles) == 2
    assert store.merges == []


def test_one_match_updates_that_profile(store: PeopleStore) -> None:
    a = _up(store, Identifier.email("a@x.com"), firstName="Ann")
    again = _up(
        store, Identifier.email("A@X.com "), Identifier.phone("+41 79 302 67 27"), lastName="Lee"
    )
    assert again == a
    profile = store.get(a)
    assert profile is not None
    assert profile.attributes == {"firstName": "Ann", "lastName": "Lee"}
    assert Identifier("PHONE", "41793026727") in profile.identifiers
    assert store.merges == []


def test_several_matches_merge_into_the_oldest(store: PeopleStore) -> None:
    a = _up(store, Identifier.email("a@x.com"), customAttributes={"Company": "A"})
    b = _up(
        store,
        Identifier.phone("41793026727"),
        customAttributes={"Company": "B", "Contract Expiry": "x"},
    )
    merged = _up(store, Identifier.email("a@x.com"), Identifier.phone("41793026727"))
    assert merged == a
    assert len(store.profiles) == 1
    assert store.find(Identifier.phone("41793026727")) == a
    assert store.resolve(b) == a
    [record] = store.merges
    assert (record.surviving_profile_id, record.absorbed_profile_id) == (a, b)
    assert record.reason == MULTIPLE_PROFILES_MATCHED
    assert record.operation_id == "op"
    # the survivor's attributes win over the absorbed profile's
    profile = store.get(a)
    assert profile is not None
    assert profile.attributes["customAttributes"] == {"Company": "A", "Contract Expiry": "x"}


def test_identifier_repeated_within_a_request_merges(store: PeopleStore) -> None:
    first = _up(store, Identifier.email("a@x.com"), scope_key="req1")
    second = _up(store, Identifier.email("a@x.com"), Identifier.external_id("e2"), scope_key="req1")
    assert second == first
    [record] = store.merges
    assert record.reason == IDENTIFIER_REPEATED_IN_REQUEST
    assert record.surviving_profile_id == first
    assert record.absorbed_profile_id != first
    # the same identifiers in a later request only update
    _up(store, Identifier.email("a@x.com"), scope_key="req2")
    assert len(store.merges) == 1


def test_identify_by_email_equals_contact_email(store: PeopleStore) -> None:
    by_type = Identifier.of("EMAIL", "Jane@Acme.com")
    contact = Identifier.email("jane@acme.com")
    assert by_type == contact
    a = _up(store, by_type)
    assert _up(store, contact) == a


def test_other_identify_by_types_include_the_sender(store: PeopleStore) -> None:
    a = _up(store, Identifier.of("FACEBOOK", "370329180020364", "page-1"))
    b = _up(store, Identifier.of("FACEBOOK", "370329180020364", "page-2"))
    assert a != b


def test_snapshot_round_trip(store: PeopleStore) -> None:
    _up(store, Identifier.email("a@x.com"))
    _up(store, Identifier.phone("41793026727"))
    _up(store, Identifier.email("a@x.com"), Identifier.phone("41793026727"))
    copy = PeopleStore(ManualClock().now)
    copy.restore(store.snapshot())
    assert copy.snapshot() == store.snapshot()
    assert copy.find(Identifier.phone("41793026727")) == 1


def test_empty_identifiers_are_refused(store: PeopleStore) -> None:
    with pytest.raises(ValueError, match="at least one identifier"):
        store.upsert([], origin="API", operation_id=None)


def test_a_repeat_that_also_matches_another_profile_records_multiple_profiles_matched(
    store: PeopleStore,
) -> None:
    older = _up(store, Identifier.phone("41790000001"))
    other = _up(store, Identifier.email("c@x.com"))
    # In one request: the phone is used, then used again together with other's email.
    _up(store, Identifier.phone("41790000001"), scope_key="req")
    survivor = _up(
        store, Identifier.phone("41790000001"), Identifier.email("c@x.com"), scope_key="req"
    )
    assert survivor == older
    [record] = store.merges
    assert (record.surviving_profile_id, record.absorbed_profile_id) == (older, other)
    assert record.reason == MULTIPLE_PROFILES_MATCHED


def test_a_merge_of_profiles_reached_only_by_repeats_is_a_repetition(store: PeopleStore) -> None:
    a = _up(store, Identifier.email("a@x.com"), scope_key="req")
    b = _up(store, Identifier.email("b@x.com"), scope_key="req")
    _up(store, Identifier.email("a@x.com"), Identifier.email("b@x.com"), scope_key="req")
    assert [(m.surviving_profile_id, m.absorbed_profile_id, m.reason) for m in store.merges] == [
        (a, b, IDENTIFIER_REPEATED_IN_REQUEST)
    ]
