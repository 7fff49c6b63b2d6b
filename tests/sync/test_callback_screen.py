"""Forged and foreign notifyUrl reports: never applied, counted, never stored without bound.

Two halves: the ledger's ``accept_callback`` (what the receiver's handler may store) on the
in-memory and both SQL ledgers, and the engine's screen (only a batch's own operation applies;
a HELD batch's claimed operationId only once Infobip confirms it) against the emulator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from moments_pipeline.sync import (
    BatchMember,
    BatchRecord,
    BatchState,
    CallbackVerdict,
    LedgerStore,
    OperationReport,
    ParticipantVerdict,
    SqlLedgerStore,
    SyncParticipant,
)
from moments_pipeline.sync._ledger_sql import MAX_PENDING_CALLBACKS
from moments_pipeline.warehouse import DuckDBWarehouse, PostgresWarehouse

from .memory_ledger import MemoryLedgerStore
from .support import AUDIENCE, CAMPAIGN, PARTITION, SyncEnv, people, sync_env

MakeApp = Callable[..., Starlette]


def _make_ledger(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> LedgerStore:
    if kind == "memory":
        return MemoryLedgerStore()
    if kind == "duckdb":
        wh: DuckDBWarehouse | PostgresWarehouse = DuckDBWarehouse(tmp_path / "ledger.duckdb")
    else:
        wh = PostgresWarehouse(request.getfixturevalue("postgres_dsn"))
    request.addfinalizer(wh.close)
    return SqlLedgerStore(wh)


@pytest.fixture(params=["memory", "duckdb", "postgres"])
def any_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerStore:
    ledger = _make_ledger(request.param, request, tmp_path)
    ledger.ensure_schema()
    return ledger


@pytest.fixture(params=["memory", "duckdb"])
def run_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerStore:
    """Ledgers for the engine runs (PostgreSQL's callback storage is covered above)."""
    return _make_ledger(request.param, request, tmp_path)


def _stored_rows(ledger: LedgerStore) -> int:
    if isinstance(ledger, MemoryLedgerStore):
        return len(ledger.received)
    assert isinstance(ledger, SqlLedgerStore)
    return int(ledger.warehouse.fetch_all(f"SELECT COUNT(*) FROM {ledger.callbacks_table}")[0][0])


def _payload(batch_id: str, operation_id: str, campaign_id: int = CAMPAIGN) -> str:
    return orjson.dumps(_report(batch_id, operation_id, campaign_id).to_payload()).decode()


def _report(
    batch_id: str,
    operation_id: str,
    campaign_id: int = CAMPAIGN,
    crowd: list[SyncParticipant] | None = None,
    status: str = "ACCEPTED",
    reason: str | None = None,
) -> OperationReport:
    idents = [p.body["identifyBy"] for p in crowd or people(1)]
    verdicts = tuple(ParticipantVerdict(i["type"], i["identifier"], status, reason) for i in idents)
    return OperationReport(operation_id, campaign_id, batch_id, verdicts)


def _plan(ledger: LedgerStore, batch_id: str = "b1") -> None:
    record = BatchRecord(batch_id, AUDIENCE, PARTITION, CAMPAIGN, 0, 1, BatchState.PLANNED)
    member = BatchMember(batch_id, "person-000000", "EMAIL", "user0@example.com", True)
    ledger.plan_batches([record], [member])
    assert ledger.claim_batch(batch_id, "run-1")
    assert ledger.mark_sending(batch_id, claimed_by="run-1")


def _sent(ledger: LedgerStore, batch_id: str, operation_id: str) -> None:
    (current,) = (
        b for b in ledger.batches(AUDIENCE, PARTITION, CAMPAIGN) if b.batch_id == batch_id
    )
    ledger.update_batches(
        [dataclasses.replace(current, state=BatchState.SENT, operation_id=operation_id)]
    )


# -- the ledger ---------------------------------------------------------------------------------


def test_unknown_callback_data_stores_nothing(any_ledger: LedgerStore) -> None:
    _plan(any_ledger)
    for i in range(50):
        verdict = any_ledger.accept_callback(f"nope-{i}", f"op-{i}", CAMPAIGN, _payload("x", "o"))
        assert verdict is CallbackVerdict.UNKNOWN
    assert _stored_rows(any_ledger) == 0


def test_only_the_recorded_operation_is_kept(any_ledger: LedgerStore) -> None:
    _plan(any_ledger)
    _sent(any_ledger, "b1", "op-real")
    accept = any_ledger.accept_callback
    assert accept("b1", "op-forged", CAMPAIGN, _payload("b1", "op-forged")) is (
        CallbackVerdict.MISMATCH
    )
    assert accept("b1", "op-real", CAMPAIGN + 1, _payload("b1", "op-real", CAMPAIGN + 1)) is (
        CallbackVerdict.MISMATCH
    )
    assert _stored_rows(any_ledger) == 0
    assert accept("b1", "op-real", CAMPAIGN, _payload("b1", "op-real")) is CallbackVerdict.STORED
    assert accept("b1", "op-real", CAMPAIGN, _payload("b1", "op-real")) is CallbackVerdict.STORED
    assert [r.operation_id for r in any_ledger.callbacks(["b1"])["b1"]] == ["op-real"]


def test_before_the_operation_is_recorded_a_few_are_kept_pending(any_ledger: LedgerStore) -> None:
    _plan(any_ledger)  # SENDING: the add's answer is not written yet
    accept = any_ledger.accept_callback
    ops = [f"op-{i}" for i in range(MAX_PENDING_CALLBACKS)]
    for op in ops:
        assert accept("b1", op, CAMPAIGN, _payload("b1", op)) is CallbackVerdict.PENDING
    assert accept("b1", ops[0], CAMPAIGN, _payload("b1", ops[0])) is CallbackVerdict.PENDING
    for i in range(20):  # a flood of invented operationIds for a real batch: bounded
        assert accept("b1", f"x-{i}", CAMPAIGN, _payload("b1", "x")) is CallbackVerdict.MISMATCH
    assert _stored_rows(any_ledger) == MAX_PENDING_CALLBACKS
    _sent(any_ledger, "b1", ops[2])
    assert accept("b1", ops[2], CAMPAIGN, _payload("b1", ops[2])) is CallbackVerdict.STORED
    assert [r.operation_id for r in any_ledger.callbacks(["b1"])["b1"]] == [ops[2]]


# -- the engine ---------------------------------------------------------------------------------


async def _post(env: SyncEnv, report: OperationReport) -> int:
    transport = httpx.ASGITransport(app=env.receiver)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver.test") as http:
        answer = await http.post(env.receiver.path, content=orjson.dumps(report.to_payload()))
    return answer.status_code


async def test_forged_operation_for_a_sent_batch_is_not_applied_and_counted(
    make_emulator_app: MakeApp, run_ledger: LedgerStore
) -> None:
    crowd = people(100)
    async with sync_env(
        make_emulator_app, run_ledger, notify=False, processing_delay_s=3600
    ) as env:
        first = await env.run(crowd, report_deadline_s=0.3, poll_timeout_s=0.1)
        assert first.status_counts == {"PENDING": 100}
        (batch,) = run_ledger.batches(AUDIENCE, PARTITION, CAMPAIGN)
        # Posted to the receiver: the ledger knows the batch's operationId, so nothing is kept.
        forged = _report(batch.batch_id, "invented-op", crowd=crowd, status="REJECTED")
        assert await _post(env, forged) == 200
        assert env.receiver.stats.rejected == 1
        assert run_ledger.callbacks([batch.batch_id]) == {}
        # Stored anyway (as if it came while the operationId was not recorded yet), and claiming
        # the account is out of credits, which would stop a run: the engine must not apply it.
        credits = _report(
            batch.batch_id, "invented-op", crowd=crowd, status="REJECTED",
            reason="REJECTED_NOT_ENOUGH_CREDITS",
        )  # fmt: skip
        run_ledger.record_callback(batch.batch_id, credits)
        env.emulator.advance(3600.0)
        second = await env.run(crowd)
    assert second.status_counts == {"ACCEPTED": 100}
    assert second.reports_by_polling == 1 and second.reports_by_callback == 0
    assert second.callbacks_rejected == 1
    assert second.as_metadata()["callbacks_rejected"] == 1


async def test_forged_claim_for_a_held_batch_is_refused_until_a_genuine_one_comes(
    make_emulator_app: MakeApp, run_ledger: LedgerStore
) -> None:
    crowd = people(100)
    async with sync_env(make_emulator_app, run_ledger, notify=False) as env:
        env.queue_fault("drop_after")
        first = await env.run(crowd)
        (held,) = first.held_batches
        await env.settle()
        # No operationId is known for a HELD batch: the ledger keeps the claim pending...
        forged = _report(held.batch_id, "invented-op", crowd=crowd)
        run_ledger.record_callback(held.batch_id, forged)
        second = await env.run(crowd)
        # ...and the engine asks Infobip about "invented-op": there is no such operation.
        assert second.status_counts == {"HELD": 100}
        assert second.callbacks_rejected == 1 and second.reports_by_callback == 0
        assert second.batches_sent == 0
        (operation,) = env.emulator.operations.values()
        genuine = OperationReport.from_payload(operation.report())
        run_ledger.record_callback(held.batch_id, genuine)
        third = await env.run(crowd)
    assert third.status_counts == {"ACCEPTED": 100}
    assert third.reports_by_callback == 1 and third.batches_sent == 0
    assert third.callbacks_rejected == 1  # the forged claim again, counted once for this run
    assert env.add_requests() == 1


async def test_claim_naming_another_batchs_operation_is_refused(
    make_emulator_app: MakeApp, run_ledger: LedgerStore
) -> None:
    async with sync_env(make_emulator_app, run_ledger, notify=False) as env:
        env.queue_fault("drop_after")
        first = await env.run(people(100))
        (held,) = first.held_batches
        other = await env.run(people(100, start=500), audience="other")
        assert other.status_counts == {"ACCEPTED": 100}
        await env.settle()
        # A real operationId of this account, but Infobip's report names another batch.
        real_other = other.operation_ids[0]
        run_ledger.record_callback(held.batch_id, _report(held.batch_id, real_other))
        second = await env.run(people(100))
    assert second.status_counts == {"HELD": 100}
    assert second.callbacks_rejected == 1


async def test_callbacks_before_the_operation_is_recorded_still_resolve(
    make_emulator_app: MakeApp, run_ledger: LedgerStore
) -> None:
    verdicts: list[CallbackVerdict] = []
    accept = run_ledger.accept_callback

    def recording(*args: Any) -> CallbackVerdict:
        verdict = accept(*args)
        verdicts.append(verdict)
        return verdict

    run_ledger.accept_callback = recording  # type: ignore[method-assign,assignment]
    async with sync_env(make_emulator_app, run_ledger) as env:
        # One batch and no flush during the run: its answer (the operationId) is not in the
        # ledger when the callback comes, only in the engine's memory.
        result = await env.run(people(100), flush_interval_s=3600.0)
    assert result.status_counts == {"ACCEPTED": 100}
    assert result.reports_by_callback == 1 and result.reports_by_polling == 0
    assert result.callbacks_rejected == 0
    assert verdicts == [CallbackVerdict.PENDING]
    assert env.receiver.stats.accepted == 1 and env.receiver.stats.rejected == 0
