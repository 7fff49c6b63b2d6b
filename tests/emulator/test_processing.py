"""Sliced asynchronous processing and its journal: same outcome as one go, across restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from moments_pipeline.emulator import EmulatorSettings, ManualClock
from moments_pipeline.emulator.flows import FlowState, Operation, parse_add_request
from moments_pipeline.emulator.persistence import read_journal
from moments_pipeline.emulator.settings import FlowConfig
from moments_pipeline.emulator.state import Emulator
from tests.emulator.conftest import FLOW, email, phone

# Repeats within the request (b@x.com, the phone) and an invalid contact exercise the People
# rules that depend on the request scope carried from one slice to the next.
PARTICIPANTS: list[dict[str, Any]] = [
    email("a@x.com", externalId="a"),
    email("b@x.com"),
    phone("41790000001", externalId="p"),
    email("B@x.com", contactInformation={"phone": [{"number": "41790000001"}]}),
    email("not-an-email"),
    email("c@x.com", externalId="a"),
    email("d@x.com", customAttributes={"Company": "ACME"}),
]


def _emulator(state: Path | None, slice_size: int = 2) -> Emulator:
    settings = EmulatorSettings(
        rate_limit_per_s=None,
        processing_delay_s=0,
        processing_slice=slice_size,
        state_path=state,
    )
    return Emulator(settings, ManualClock())


def _accept(emulator: Emulator, body: bytes) -> str:
    return emulator.accept(FLOW, parse_add_request(body), body).operation_id


def _people(emulator: Emulator) -> list[tuple[Any, ...]]:
    return [
        (p["id"], p["emails"], p["phones"], p["externalIds"], p["attributes"])
        for p in emulator.people.snapshot()["profiles"]
    ]


def _merges(emulator: Emulator) -> list[tuple[Any, ...]]:
    return [
        (m.surviving_profile_id, m.absorbed_profile_id, m.reason) for m in emulator.people.merges
    ]


def _reference() -> Emulator:
    reference = _emulator(None, slice_size=1000)
    _accept(reference, orjson.dumps({"participants": PARTICIPANTS}))
    reference.process_due()
    return reference


def test_slices_give_the_outcome_of_one_go() -> None:
    reference = _reference()
    sliced = _emulator(None, slice_size=2)
    op = _accept(sliced, orjson.dumps({"participants": PARTICIPANTS}))
    steps = []
    while (completed := sliced.process_next_slice(2)) is not None:
        steps.append(completed)
        if not completed:
            # between slices the report is still PENDING for everyone
            statuses = {p["status"] for p in sliced.operations[op].report()["participants"]}
            assert statuses == {"PENDING"}
    assert steps == [False, False, False, True]
    assert sliced.operations[op].results == next(iter(reference.operations.values())).results
    assert _people(sliced) == _people(reference)
    assert _merges(sliced) == _merges(reference)
    assert sliced.flows[FLOW].members == reference.flows[FLOW].members


def test_a_kill_between_slices_resumes_from_the_journal(tmp_path: Path) -> None:
    reference = _reference()
    state = tmp_path / "state.jsonl"
    killed = _emulator(state)
    op = _accept(killed, orjson.dumps({"participants": PARTICIPANTS}))
    assert killed.process_next_slice(2) is False
    assert killed.process_next_slice(2) is False
    # no close(): what a SIGKILL leaves is what was written so far
    kinds = [r["t"] for r in read_journal(state)]
    assert kinds == ["add", "slice", "slice"]

    restarted = _emulator(state)
    assert restarted.operations[op].results is None
    assert restarted.report(FLOW, op)["participants"][0]["status"] != "PENDING"
    assert restarted.operations[op].results == next(iter(reference.operations.values())).results
    assert _people(restarted) == _people(reference)
    assert _merges(restarted) == _merges(reference)
    restarted.close()

    compacted = _emulator(state)
    assert [r["t"] for r in read_journal(state)] == ["snapshot"]
    assert compacted.operations[op].results == restarted.operations[op].results
    assert _people(compacted) == _people(reference)


def test_close_completes_a_half_processed_operation(tmp_path: Path) -> None:
    reference = _reference()
    state = tmp_path / "state.jsonl"
    first = _emulator(state)
    op = _accept(first, orjson.dumps({"participants": PARTICIPANTS}))
    assert first.process_next_slice(3) is False
    first.close()
    again = _emulator(state)
    assert again.operations[op].results == next(iter(reference.operations.values())).results
    assert _people(again) == _people(reference)


def test_a_pretty_printed_body_is_journaled_on_one_line(tmp_path: Path) -> None:
    state = tmp_path / "state.jsonl"
    first = _emulator(state)
    body = orjson.dumps({"participants": PARTICIPANTS[:2]}, option=orjson.OPT_INDENT_2)
    assert b"\n" in body
    op = _accept(first, body)
    records = list(read_journal(state))
    assert [r["t"] for r in records] == ["add"]
    assert records[0]["body"]["participants"] == PARTICIPANTS[:2]
    again = _emulator(state)
    again.process_due()
    assert [p["status"] for p in again.report(FLOW, op)["participants"]] == [
        "ACCEPTED",
        "ACCEPTED",
    ]


def test_the_inlined_hot_path_applies_the_reference_rules() -> None:
    # ParticipantRun.step inlines identifier extraction and creates new people through
    # PeopleStore.upsert_api; the reference is flows._identifiers + PeopleStore.upsert.
    from moments_pipeline.emulator.flows import _NOT_ATTRIBUTES, ParticipantRun, _identifiers
    from moments_pipeline.emulator.people import PeopleStore

    participants = [
        *PARTICIPANTS,
        email(" Mixed@X.com ", tags=["t", "t"], customAttributes={"Company": "B"}),
        email("e@x.com", contactInformation={"email": [{"address": "MIXED@x.com"}, {}]}),
        email("f@x.com", contactInformation={"email": [{"address": "bad"}]}),
        phone("0123"),
        phone("41790000002", contactInformation={"phone": [{"number": "+41"}]}),
        {"identifyBy": {"identifier": "fb-1", "type": "FACEBOOK", "sender": "page"}},
        {"identifyBy": {"identifier": "fb-1", "type": "FACEBOOK", "sender": "other"}},
        email("g@x.com", externalId="a", contactInformation={"phone": [{"number": "41790000002"}]}),
        email("a" * 250 + "@x.com"),
        email("h@x.com", unknownAttr=1, customAttributes={"Nope": 1}),
    ]
    prior = [email("c@x.com"), phone("41790000002", externalId="q")]
    clock = ManualClock()

    fast = PeopleStore(clock.now)
    for p in prior:
        fast.upsert(_identifiers(p) or [], {}, origin="API", operation_id="seed")
    flow = FlowState(FlowConfig(campaign_id=FLOW))
    op = Operation("op", FLOW, participants, None, None, 0.0, 0.0)
    run = ParticipantRun(op, flow, fast, custom_attributes=frozenset({"Company"}))
    run.step(len(participants), credits_left=None)

    reference = PeopleStore(clock.now)
    for p in prior:
        reference.upsert(_identifiers(p) or [], {}, origin="API", operation_id="seed")
    scope = reference.request_scope("op")
    expected = []
    for p in participants:
        ids = _identifiers(p)
        person = p.get("person") or {}
        custom = person.get("customAttributes") or {}
        if ids is None:
            expected.append("REJECTED_INVALID_CONTACT")
        elif any(name != "Company" for name in custom):
            expected.append("REJECTED_ATTRIBUTE_MISSED")
        else:
            attrs = {k: v for k, v in person.items() if k not in _NOT_ATTRIBUTES}
            reference.upsert(ids, attrs, origin="API", operation_id="op", scope=scope)
            expected.append(None)
    # Flow membership is not part of the reference: a re-entry refusal still upserted.
    reasons = [r.get("errorReason") for r in run.results]
    assert [None if r == "REJECTED_PERSON_IN_FLOW" else r for r in reasons] == expected
    assert "REJECTED_PERSON_IN_FLOW" in reasons
    assert fast.snapshot() == reference.snapshot()
    assert len(fast.merges) >= 3
