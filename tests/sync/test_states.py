"""The one transition table: every pair not in it is refused, by the function and the ledgers."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from moments_pipeline.sync import (
    BATCH_TRANSITIONS,
    STATUS_TRANSITIONS,
    BatchMember,
    BatchRecord,
    BatchState,
    IllegalTransition,
    LedgerStore,
    ParticipantStatus,
    SqlLedgerStore,
    StatusRow,
    check_status_transition,
    check_transition,
)
from moments_pipeline.warehouse import DuckDBWarehouse

from .memory_ledger import MemoryLedgerStore

ILLEGAL_BATCH = [
    (old, new)
    for old, new in itertools.product(BatchState, BatchState)
    if (old, new) not in BATCH_TRANSITIONS
]
ILLEGAL_STATUS = [
    (old, new)
    for old, new in itertools.product([None, *ParticipantStatus], ParticipantStatus)
    if (old, new) not in STATUS_TRANSITIONS
]


def test_the_tables_say_what_may_have_left() -> None:
    # Nothing reaches SENDING except from a claim or an operator's re-send of a HELD batch.
    assert {o for o, n in BATCH_TRANSITIONS if n is BatchState.SENDING} == {
        BatchState.CLAIMED,
        BatchState.HELD,
    }
    # A batch that may have left never goes back to "never left".
    never_left = {BatchState.PLANNED, BatchState.CLAIMED}
    may_have_left = {BatchState.SENT, BatchState.HELD, BatchState.REPORTED}
    assert not {(o, n) for o, n in BATCH_TRANSITIONS if o in may_have_left and n in never_left}
    # Terminal states.
    assert not {o for o, _ in BATCH_TRANSITIONS} & {BatchState.REPORTED, BatchState.FAILED}
    assert len(ILLEGAL_BATCH) == len(BatchState) ** 2 - len(BATCH_TRANSITIONS) > 30


@pytest.mark.parametrize(("old", "new"), sorted(BATCH_TRANSITIONS))
def test_every_allowed_batch_transition_passes(old: BatchState, new: BatchState) -> None:
    assert check_transition(old, new) is new


@pytest.mark.parametrize(("old", "new"), ILLEGAL_BATCH)
def test_every_illegal_batch_transition_is_refused(old: BatchState, new: BatchState) -> None:
    with pytest.raises(IllegalTransition, match=f"{old.value} -> {new.value}"):
        check_transition(old, new, "b1")


@pytest.mark.parametrize(("old", "new"), ILLEGAL_STATUS)
def test_every_illegal_status_transition_is_refused(
    old: ParticipantStatus | None, new: ParticipantStatus
) -> None:
    with pytest.raises(IllegalTransition):
        check_status_transition(old, new)


def test_unknown_statuses_are_refused() -> None:
    with pytest.raises(IllegalTransition):
        check_status_transition(None, "DELIVERED")
    with pytest.raises(IllegalTransition):
        check_status_transition("LOST", "ACCEPTED")


@pytest.fixture(params=["memory", "duckdb"])
def any_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LedgerStore]:
    """Both ledgers (the SQL one checks in the database; PostgreSQL runs the same SQL)."""
    if request.param == "memory":
        yield MemoryLedgerStore()
        return
    warehouse = DuckDBWarehouse(tmp_path / "ledger.duckdb")
    ledger = SqlLedgerStore(warehouse)
    ledger.ensure_schema()
    try:
        yield ledger
    finally:
        warehouse.close()


def _record(state: BatchState) -> BatchRecord:
    return BatchRecord("b1", "aud", "p", 7, 0, 1, state, claimed_by="run-1")


def _force(ledger: LedgerStore, state: BatchState) -> None:
    """Bring batch b1 to ``state`` by allowed steps only."""
    path = {
        BatchState.PLANNED: [],
        BatchState.CLAIMED: [BatchState.CLAIMED],
        BatchState.SENDING: [BatchState.CLAIMED, BatchState.SENDING],
        BatchState.SENT: [BatchState.CLAIMED, BatchState.SENDING, BatchState.SENT],
        BatchState.HELD: [BatchState.CLAIMED, BatchState.SENDING, BatchState.HELD],
        BatchState.REPORTED: [
            BatchState.CLAIMED,
            BatchState.SENDING,
            BatchState.SENT,
            BatchState.REPORTED,
        ],
        BatchState.FAILED: [BatchState.CLAIMED, BatchState.FAILED],
    }[state]
    ledger.plan_batches(
        [_record(BatchState.PLANNED)], [BatchMember("b1", "p1", "EMAIL", "a@x.com", True)]
    )
    ledger.update_batches([_record(s) for s in path])


@pytest.mark.parametrize(("old", "new"), ILLEGAL_BATCH)
def test_the_ledgers_refuse_every_illegal_batch_transition(
    any_ledger: LedgerStore, old: BatchState, new: BatchState
) -> None:
    _force(any_ledger, old)
    with pytest.raises(IllegalTransition):
        any_ledger.update_batches([_record(new)])
    (stored,) = any_ledger.batches("aud", "p", 7)
    assert stored.state is old  # nothing landed


def test_a_refused_change_rolls_the_whole_write_back(any_ledger: LedgerStore) -> None:
    _force(any_ledger, BatchState.SENDING)
    sent = dataclasses.replace(_record(BatchState.SENT), operation_id="op-1")
    with pytest.raises(IllegalTransition):
        any_ledger.update_batches([sent, _record(BatchState.CLAIMED)])  # SENT -> CLAIMED
    (stored,) = any_ledger.batches("aud", "p", 7)
    assert stored.state is BatchState.SENDING and stored.operation_id is None


def _status(status: str) -> StatusRow:
    return StatusRow(7, "p1", "aud", "p", "b1", None, status, None, status == "ACCEPTED")


def test_the_ledgers_refuse_overwriting_an_accepted_participant(any_ledger: LedgerStore) -> None:
    any_ledger.upsert_statuses([_status("HELD")])
    any_ledger.upsert_statuses([_status("ACCEPTED")])
    for status in ("HELD", "PENDING", "NOT_SENT", "REJECTED"):
        with pytest.raises(IllegalTransition):
            any_ledger.upsert_statuses([_status(status)])
    assert [r.status for r in any_ledger.statuses(7)] == ["ACCEPTED"]
    unknown = dataclasses.replace(_status("HELD"), person_key="p2", status="DELIVERED")
    with pytest.raises(IllegalTransition):
        any_ledger.upsert_statuses([unknown])
