"""The SQL ledger on DuckDB and PostgreSQL: same behaviour on both."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from moments_pipeline.sync import (
    IN_FLOW_REASON,
    BatchMember,
    BatchMembers,
    BatchRecord,
    BatchState,
    IllegalTransition,
    OperationReport,
    ParticipantVerdict,
    QuarantineRow,
    SqlLedgerStore,
    StatusRow,
    prior_identities_frame,
)
from moments_pipeline.warehouse import PostgresWarehouse, connect_warehouse


def _batch(batch_id: str, state: BatchState = BatchState.PLANNED) -> BatchRecord:
    return BatchRecord(batch_id, "aud", "2026-11-25", 7, 0, 2, state)


def _members(batch_id: str, *people: str) -> list[BatchMember]:
    rows = []
    for p in people:
        rows.append(BatchMember(batch_id, p, "EMAIL", f"{p}@example.com", True))
        rows.append(BatchMember(batch_id, p, "EXTERNAL_ID", f"ext-{p}", False))
    return rows


def _on_wire(ledger: SqlLedgerStore, batch_id: str, run_id: str = "run-1") -> None:
    assert ledger.claim_batch(batch_id, run_id)
    assert ledger.mark_sending(batch_id, claimed_by=run_id)


def _status(
    person: str, status: str, reason: str | None = None, delivered: bool = False
) -> StatusRow:
    return StatusRow(7, person, "aud", "2026-11-25", "b1", "op1", status, reason, delivered)


def test_schema_is_idempotent_and_outbox_round_trips(sql_ledger: SqlLedgerStore) -> None:
    sql_ledger.ensure_schema()
    sql_ledger.plan_batches(
        [_batch("b1"), _batch("b2")], _members("b1", "p1", "p2") + _members("b2", "p3")
    )
    _on_wire(sql_ledger, "b1")
    sent = dataclasses.replace(
        _batch("b1"), state=BatchState.SENT, operation_id="op-1", resent=True, claimed_by="run-1"
    )
    sql_ledger.update_batches([sent])
    got = {b.batch_id: b for b in sql_ledger.batches("aud", "2026-11-25", 7)}
    assert got["b1"] == sent
    assert got["b2"].state is BatchState.PLANNED
    assert sql_ledger.batches("aud", "other", 7) == []
    assert sorted(m.person_key for m in sql_ledger.batch_members(["b1"]) if m.is_identify_by) == [
        "p1",
        "p2",
    ]


def test_discard_planned_leaves_sent_batches(sql_ledger: SqlLedgerStore) -> None:
    sql_ledger.plan_batches(
        [_batch("b1"), _batch("b2")], _members("b1", "p1") + _members("b2", "p2")
    )
    _on_wire(sql_ledger, "b1")
    sql_ledger.discard_planned(["b1", "b2"])
    assert [b.batch_id for b in sql_ledger.batches("aud", "2026-11-25", 7)] == ["b1"]
    assert sql_ledger.batch_members(["b2"]) == []


def test_identity_ledger_holds_only_identifiers_that_may_have_left(
    sql_ledger: SqlLedgerStore,
) -> None:
    sql_ledger.plan_batches(
        [_batch("b1"), _batch("b2")], _members("b1", "p1") + _members("b2", "p2")
    )
    assert sql_ledger.sent_identities() == []
    _on_wire(sql_ledger, "b1")
    assert sql_ledger.sent_identities() == [
        ("EMAIL", "p1@example.com", "p1"),
        ("EXTERNAL_ID", "ext-p1", "p1"),
    ]


def test_identity_ledger_records_the_profile_anchor(sql_ledger: SqlLedgerStore) -> None:
    members = BatchMembers(
        ["b1", "b1", "b1"],
        ["p1", "p1", "p2"],
        ["EMAIL", "EXTERNAL_ID", "EMAIL"],
        ["p1@example.com", "ext-p1", "p2@example.com"],
        [True, False, True],
        ["anchor-1", "anchor-1", None],
    )
    sql_ledger.plan_batches([_batch("b1")], members)
    assert sql_ledger.batch_members(["b1"]) == list(members)
    _on_wire(sql_ledger, "b1")
    frame = prior_identities_frame(sql_ledger)
    assert list(frame.columns) == ["kind", "identifier", "person_key"]
    assert sorted(map(tuple, frame.to_numpy().tolist())) == [
        ("EMAIL", "p1@example.com", "anchor-1"),
        ("EMAIL", "p2@example.com", "p2"),  # no anchor recorded: the person key
        ("EXTERNAL_ID", "ext-p1", "anchor-1"),
    ]


def test_statuses_upsert_and_delivered_keys(sql_ledger: SqlLedgerStore) -> None:
    sql_ledger.upsert_statuses(
        [_status("p1", "PENDING"), _status("p2", "REJECTED", "REJECTED_INVALID_CONTACT")]
    )
    sql_ledger.upsert_statuses(
        [_status("p1", "ACCEPTED", delivered=True), _status("p3", "REJECTED", IN_FLOW_REASON)]
    )
    rows = {r.person_key: r for r in sql_ledger.statuses(7)}
    assert set(rows) == {"p1", "p2", "p3"}
    assert rows["p1"].status == "ACCEPTED" and rows["p1"].delivered
    assert rows["p2"].error_reason == "REJECTED_INVALID_CONTACT"
    assert sql_ledger.delivered_person_keys(7) == {"p1", "p3"}
    assert [r.person_key for r in sql_ledger.statuses(7, ["p2"])] == ["p2"]
    assert sql_ledger.delivered_person_keys(8) == set()


def test_quarantine_is_replaced_per_partition(sql_ledger: SqlLedgerStore) -> None:
    first = [
        QuarantineRow("aud", "p", "r1", "INVALID_EMAIL", "bad"),
        QuarantineRow("aud", "p", "r2", "X", None),
    ]
    sql_ledger.record_quarantine(first)
    sql_ledger.record_quarantine([QuarantineRow("aud", "p", "r3", "IDENTITY_CONFLICT", "shared")])
    sql_ledger.record_quarantine([QuarantineRow("aud", "q", "r9", "X", None)])
    assert sql_ledger.quarantine("aud", "p") == [
        QuarantineRow("aud", "p", "r3", "IDENTITY_CONFLICT", "shared")
    ]
    assert len(sql_ledger.quarantine("aud", "q")) == 1


def test_callbacks_are_kept_per_operation(sql_ledger: SqlLedgerStore) -> None:
    verdict = ParticipantVerdict("EMAIL", "p1@example.com", "ACCEPTED")
    first = OperationReport("op-a", 7, "b1", (verdict,))
    second = OperationReport(
        "op-b",
        7,
        "b1",
        (dataclasses.replace(verdict, status="REJECTED", error_reason=IN_FLOW_REASON),),
    )
    sql_ledger.record_callback("b1", first)
    sql_ledger.record_callback("b1", first)  # a repeated delivery replaces, never duplicates
    sql_ledger.record_callback("b1", second)
    got = sql_ledger.callbacks(["b1", "b2"])
    assert set(got) == {"b1"}
    assert sorted(r.operation_id for r in got["b1"]) == ["op-a", "op-b"]
    assert first in got["b1"]


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_a_ledger_of_the_previous_release_gains_the_new_columns(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # The outbox and members tables as the previous release created them.
    url = (
        f"duckdb:///{tmp_path / 'old.duckdb'}"
        if backend == "duckdb"
        else request.getfixturevalue("postgres_dsn")
    )
    warehouse = connect_warehouse(url)
    try:
        warehouse.execute(
            "CREATE TABLE moments_sync_outbox (batch_id TEXT PRIMARY KEY, audience TEXT NOT NULL, "
            "partition_key TEXT NOT NULL, campaign_id BIGINT NOT NULL, attempt INTEGER NOT NULL, "
            "size INTEGER NOT NULL, state TEXT NOT NULL, operation_id TEXT, reason TEXT, "
            "resent BOOLEAN NOT NULL DEFAULT FALSE, updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)"
        )
        warehouse.execute(
            "CREATE TABLE moments_sync_batch_members (batch_id TEXT NOT NULL, "
            "person_key TEXT NOT NULL, kind TEXT NOT NULL, identifier TEXT NOT NULL, "
            "is_identify_by BOOLEAN NOT NULL)"
        )
        SqlLedgerStore(warehouse).ensure_schema()
        SqlLedgerStore(warehouse).ensure_schema()  # idempotent
        outbox = warehouse.read_query("SELECT * FROM moments_sync_outbox LIMIT 0").columns
        members = warehouse.read_query("SELECT * FROM moments_sync_batch_members LIMIT 0").columns
    finally:
        warehouse.close()
    assert {"claimed_by", "resent_at"} <= set(outbox)
    assert "profile_anchor" in set(members)


def test_a_second_record_of_the_same_final_report_is_not_a_transition(
    sql_ledger: SqlLedgerStore,
) -> None:
    # Two runs without a common lease may both poll one operation's report.
    sql_ledger.plan_batches([_batch("b1")], _members("b1", "p1"))
    _on_wire(sql_ledger, "b1")
    sent = dataclasses.replace(_batch("b1"), state=BatchState.SENT, operation_id="op-1")
    reported = dataclasses.replace(sent, state=BatchState.REPORTED)
    sql_ledger.update_batches([sent])
    sql_ledger.update_batches([reported])
    sql_ledger.update_batches([reported])
    with pytest.raises(IllegalTransition):
        sql_ledger.update_batches([dataclasses.replace(reported, operation_id="op-forged")])
    [got] = sql_ledger.batches("aud", "2026-11-25", 7)
    assert (got.state, got.operation_id) == (BatchState.REPORTED, "op-1")


def test_statuses_of_many_keys_are_exactly_those_keys_rows(sql_ledger: SqlLedgerStore) -> None:
    # Past _WHOLE_FLOW_READ_AFTER IN-lists the flow is read whole and filtered: the answer must
    # be the same as the IN-list path's, other people and other flows left out.
    wh = sql_ledger.warehouse
    columns = (
        "campaign_id, person_key, audience, partition_key, batch_id, operation_id, status, "
        "error_reason, delivered"
    )
    wh.execute(
        f"INSERT INTO {sql_ledger.status} ({columns}) "
        "SELECT c.c, 'p' || lpad(CAST(g.i AS TEXT), 6, '0'), 'a', '', 'b', 'op', 'ACCEPTED', "
        "NULL, true FROM generate_series(0, 59999) AS g(i) CROSS JOIN (VALUES (1), (2)) AS c(c)"
    )
    many = [f"p{i:06d}" for i in range(55_000)] + ["nobody"]
    assert len(set(many)) > 100 * 500  # the whole-flow path
    got = sql_ledger.statuses(1, many)
    assert [r.person_key for r in got] == sorted(set(many) - {"nobody"})
    assert {r.campaign_id for r in got} == {1}
    few = ["p000007", "p059999", "nobody"]  # the IN-list path
    assert [r.person_key for r in sql_ledger.statuses(1, few)] == ["p000007", "p059999"]


@pytest.mark.postgres
def test_ensure_schema_does_not_wait_for_a_reader_of_the_ledger(postgres_dsn: str) -> None:
    # A reader in an open transaction holds a share lock on the outbox. ensure_schema of an
    # up-to-date ledger must not need the exclusive lock ALTER TABLE takes (it waited for the
    # reader, and deadlocked with one reading two tables in the other order).
    writer = PostgresWarehouse(postgres_dsn)
    reader = PostgresWarehouse(postgres_dsn)
    try:
        ledger = SqlLedgerStore(writer)
        ledger.ensure_schema()
        done = threading.Event()
        with reader.transaction():
            reader.fetch_all(f"SELECT count(*) FROM {ledger.outbox}")
            worker = threading.Thread(target=lambda: (ledger.ensure_schema(), done.set()))
            worker.start()
            finished = done.wait(timeout=10)
        worker.join(timeout=30)
        assert finished, "ensure_schema waited for a reader's share lock"
    finally:
        writer.close()
        reader.close()
