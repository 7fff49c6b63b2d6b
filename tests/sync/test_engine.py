"""The engine against the in-process emulator, on the SQL ledger (DuckDB, PostgreSQL) and the
in-memory one: exactly once, re-runs, ambiguous sends, callbacks, polling, the deadline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.applications import Starlette

from moments_pipeline.sync import (
    IN_FLOW_REASON,
    BatchState,
    LedgerStore,
    OperationReport,
    SqlLedgerStore,
    SyncParticipant,
    prior_identities_frame,
)
from moments_pipeline.warehouse import DuckDBWarehouse, PostgresWarehouse

from .memory_ledger import MemoryLedgerStore
from .support import AUDIENCE, CAMPAIGN, PARTITION, people, sync_env

MakeApp = Callable[..., Starlette]


@pytest.fixture(params=["memory", "duckdb", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerStore:
    """The in-memory ledger and the SQL one on both warehouses: the engine must not care."""
    if request.param == "memory":
        return MemoryLedgerStore()
    if request.param == "duckdb":
        wh: DuckDBWarehouse | PostgresWarehouse = DuckDBWarehouse(tmp_path / "ledger.duckdb")
    else:
        wh = PostgresWarehouse(request.getfixturevalue("postgres_dsn"))
    request.addfinalizer(wh.close)
    return SqlLedgerStore(wh)


async def test_happy_path_exactly_once_then_rerun_sends_nothing(
    make_emulator_app: MakeApp, ledger: LedgerStore
) -> None:
    async with sync_env(make_emulator_app, ledger) as env:
        crowd = people(250)
        result = await env.run(crowd)
        assert result.status_counts == {"ACCEPTED": 250}
        assert result.delivered == 250
        assert result.batches_sent == 3 and len(result.operation_ids) == 3
        assert result.reports_by_callback == 3 and result.reports_by_polling == 0
        assert result.complete and result.held_batches == []

        members = await env.flow_members()
        emails = sorted(m["emails"][0] for m in members)
        assert emails == sorted(p.body["identifyBy"]["identifier"] for p in crowd)
        assert await env.merges() == []
        statuses = ledger.statuses(CAMPAIGN)
        assert len(statuses) == 250 and {s.status for s in statuses} == {"ACCEPTED"}
        assert {b.state for b in ledger.batches(AUDIENCE, PARTITION, CAMPAIGN)} == {
            BatchState.REPORTED
        }

        again = await env.run(crowd)
        assert again.batches_sent == 0 and again.already_delivered == 250
        assert env.add_requests() == 3

        grown = await env.run(people(260))
        assert grown.batches_sent == 1 and grown.status_counts == {"ACCEPTED": 10}
        assert grown.delivered == 260
        assert len(await env.flow_members()) == 260
        assert await env.merges() == []


async def test_ambiguous_drop_after_is_held_and_never_resent_by_default(
    make_emulator_app: MakeApp, ledger: LedgerStore
) -> None:
    async with sync_env(make_emulator_app, ledger, notify=False) as env:
        crowd = people(150)
        env.queue_fault("drop_after")
        first = await env.run(crowd)
        assert len(first.held_batches) == 1
        held = first.held_batches[0]
        assert held.state == "HELD" and held.reason.startswith("AMBIGUOUS_SEND")
        assert first.status_counts["HELD"] == held.size
        assert first.status_counts["ACCEPTED"] == 150 - held.size
        assert not first.complete
        held_rows = [s for s in ledger.statuses(CAMPAIGN) if s.status == "HELD"]
        assert len(held_rows) == held.size and all(s.error_reason == held.reason for s in held_rows)

        second = await env.run(crowd)
        assert second.batches_sent == 0
        assert [h.batch_id for h in second.held_batches] == [held.batch_id]
        assert env.add_requests() == 2

        # The dropped request was processed: a re-send meets REJECTED_PERSON_IN_FLOW, which
        # counts as delivered on a re-sent batch.
        third = await env.run(crowd, resend_ambiguous=True)
        assert third.batches_sent == 1 and third.held_batches == []
        assert third.reason_counts == {IN_FLOW_REASON: held.size}
        assert third.delivered == 150
        members = await env.flow_members()
        assert len(members) == 150
        assert len({m["id"] for m in members}) == 150
        assert await env.merges() == []
        assert {s.delivered for s in ledger.statuses(CAMPAIGN)} == {True}


async def test_ambiguous_send_resolved_by_callback(
    make_emulator_app: MakeApp, tmp_path: Path
) -> None:
    ledger = SqlLedgerStore(DuckDBWarehouse(tmp_path / "l.duckdb"))
    async with sync_env(make_emulator_app, ledger) as env:
        env.queue_fault("drop_after")
        result = await env.run(people(150))
        assert result.held_batches == []
        assert result.status_counts == {"ACCEPTED": 150}
        assert result.reports_by_callback == 2
        assert env.add_requests() == 2  # nothing re-sent
        assert len(await env.flow_members()) == 150


async def test_5xx_is_ambiguous_then_resent_on_request(
    make_emulator_app: MakeApp, tmp_path: Path
) -> None:
    ledger = SqlLedgerStore(DuckDBWarehouse(tmp_path / "l.duckdb"))
    async with sync_env(make_emulator_app, ledger, notify=False) as env:
        env.queue_fault("500")
        first = await env.run(people(100))
        assert first.status_counts == {"HELD": 100}
        assert "HTTP_500" in first.held_batches[0].reason
        assert await env.flow_members() == []
        second = await env.run(people(100), resend_ambiguous=True)
        assert second.status_counts == {"ACCEPTED": 100}
        assert second.delivered == 100
        assert env.add_requests() == 1  # the emulator answered 500 without processing
        assert len(await env.flow_members()) == 100


async def test_held_batch_from_a_crash_is_resolved_by_a_recorded_callback(
    make_emulator_app: MakeApp, tmp_path: Path
) -> None:
    ledger = SqlLedgerStore(DuckDBWarehouse(tmp_path / "l.duckdb"))
    async with sync_env(make_emulator_app, ledger, notify=False) as env:
        env.queue_fault("drop_after")
        first = await env.run(people(100))
        (held,) = first.held_batches
        # A receiver running as a separate service got the report after this run ended.
        await env.settle()
        (operation,) = env.emulator.operations.values()
        report = OperationReport.from_payload(operation.report())
        assert report.callback_data == held.batch_id
        ledger.record_callback(held.batch_id, report)
        second = await env.run(people(100))
        assert second.batches_sent == 0
        assert second.status_counts == {"ACCEPTED": 100}
        assert second.reports_by_callback == 1
        assert env.add_requests() == 1


async def test_reports_fall_back_to_polling_when_callbacks_do_not_arrive(
    make_emulator_app: MakeApp, tmp_path: Path
) -> None:
    ledger = SqlLedgerStore(DuckDBWarehouse(tmp_path / "l.duckdb"))
    async with sync_env(make_emulator_app, ledger, callbacks_reach_us=False) as env:
        result = await env.run(people(200), callback_grace_s=0.05)
        assert result.status_counts == {"ACCEPTED": 200}
        assert result.reports_by_polling == 2 and result.reports_by_callback == 0


async def test_pending_at_the_deadline_is_recorded_then_finished_by_a_later_run(
    make_emulator_app: MakeApp, tmp_path: Path
) -> None:
    ledger = SqlLedgerStore(DuckDBWarehouse(tmp_path / "l.duckdb"))
    async with sync_env(make_emulator_app, ledger, notify=False, processing_delay_s=3600.0) as env:
        crowd = people(120)
        first = await env.run(crowd, report_deadline_s=0.3, poll_timeout_s=0.1)
        assert first.status_counts == {"PENDING": 120}
        assert first.pending == 120 and not first.complete
        assert {s.status for s in ledger.statuses(CAMPAIGN)} == {"PENDING"}
        assert {b.state for b in ledger.batches(AUDIENCE, PARTITION, CAMPAIGN)} == {BatchState.SENT}

        env.emulator.advance(3600.0)
        second = await env.run(crowd)
        assert second.batches_sent == 0
        assert second.status_counts == {"ACCEPTED": 120}
        assert env.add_requests() == 2


async def test_identity_ledger_carries_the_profile_anchor_of_each_participant(
    make_emulator_app: MakeApp, ledger: LedgerStore
) -> None:
    crowd = [
        SyncParticipant(p.person_key, p.body, f"profile-{i % 2}") for i, p in enumerate(people(4))
    ]
    async with sync_env(make_emulator_app, ledger) as env:
        result = await env.run(crowd)
    assert result.status_counts == {"ACCEPTED": 4}
    recorded = {(kind, value): anchor for kind, value, anchor in ledger.sent_identities()}
    for i, p in enumerate(crowd):
        assert recorded[("EMAIL", p.body["identifyBy"]["identifier"])] == f"profile-{i % 2}"
        assert recorded[("EXTERNAL_ID", f"ext-{i}")] == f"profile-{i % 2}"
    frame = prior_identities_frame(ledger)
    assert set(frame["person_key"]) == {"profile-0", "profile-1"}
