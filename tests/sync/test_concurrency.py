"""Two runs on one ledger at once: the run lease and the SENDING compare-and-set.

Both engines run in one event loop against the in-process emulator (with latency, so the first
run is mid-sync when the second starts) and share one ``SqlLedgerStore`` on DuckDB and on
PostgreSQL. Whatever the interleaving, nobody is added twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from moments_pipeline.emulator import FaultSettings
from moments_pipeline.sync import (
    BatchMember,
    BatchRecord,
    BatchState,
    LeaseHeldError,
    LeaseLostError,
    SqlLedgerStore,
    SyncOptions,
    SyncResult,
)
from moments_pipeline.warehouse import DuckDBWarehouse, PostgresWarehouse, Warehouse

from .support import AUDIENCE, CAMPAIGN, PARTITION, SyncEnv, people, sync_env

MakeApp = Callable[..., Starlette]
ROWS, BATCH = 40, 4
SLOW: dict[str, Any] = {"faults": FaultSettings(latency_ms=60), "notify": False}
ONE_AT_A_TIME: dict[str, Any] = {
    "batch_size": BATCH,
    "max_concurrent_sends": 1,
    "report_deadline_s": 5.0,
}


@pytest.fixture(params=["duckdb", "postgres"])
def shared_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> SqlLedgerStore:
    """One SQL ledger both runs share (DuckDB file or PostgreSQL database)."""
    if request.param == "duckdb":
        wh: Warehouse = DuckDBWarehouse(tmp_path / "ledger.duckdb")
    else:
        wh = PostgresWarehouse(request.getfixturevalue("postgres_dsn"))
    request.addfinalizer(wh.close)
    ledger = SqlLedgerStore(wh)
    ledger.ensure_schema()
    return ledger


async def _once_sending(env: SyncEnv) -> None:
    """Wait until the first run has requests out (and PLANNED batches waiting for a slot)."""
    for _ in range(500):
        if env.emulator.operations:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the first run never sent")


async def _assert_everyone_added_once(env: SyncEnv) -> None:
    per_person = env.add_requests_per_identifier()
    everyone = [p.body["identifyBy"]["identifier"] for p in people(ROWS)]
    assert {per_person[e] for e in everyone} == {1}, "somebody was sent twice (or never)"
    assert sum(per_person.values()) == ROWS
    members = await env.flow_members()
    assert sorted(m["emails"][0] for m in members) == sorted(everyone)
    assert await env.merges() == []


async def test_second_run_fails_fast_naming_the_holder(
    make_emulator_app: MakeApp, shared_ledger: SqlLedgerStore
) -> None:
    async with sync_env(make_emulator_app, shared_ledger, **SLOW) as env:
        first = asyncio.create_task(env.run(people(ROWS), run_id="run-A", **ONE_AT_A_TIME))
        await _once_sending(env)
        with pytest.raises(LeaseHeldError) as refused:
            await env.run(people(ROWS), run_id="run-B", **ONE_AT_A_TIME)
        done = await first
        assert refused.value.holder == "run-A"
        assert "run-A" in str(refused.value) and "audience='vip'" in str(refused.value)
        assert done.delivered == ROWS and done.skipped_batches == []
        await _assert_everyone_added_once(env)
        # Released at the end: a later run gets the lease and finds nothing left to send.
        again = await env.run(people(ROWS), run_id="run-C", **ONE_AT_A_TIME)
        assert again.batches_sent == 0 and again.already_delivered == ROWS


async def test_second_run_waits_for_the_lease_then_sends_nothing_twice(
    make_emulator_app: MakeApp, shared_ledger: SqlLedgerStore
) -> None:
    async with sync_env(make_emulator_app, shared_ledger, **SLOW) as env:
        first = asyncio.create_task(env.run(people(ROWS), run_id="run-A", **ONE_AT_A_TIME))
        await _once_sending(env)
        second = await env.run(
            people(ROWS), run_id="run-B", lease_wait_s=60.0, lease_poll_s=0.02, **ONE_AT_A_TIME
        )
        done = await first
        assert done.delivered == ROWS
        assert second.batches_sent == 0 and second.already_delivered == ROWS
        await _assert_everyone_added_once(env)


async def test_without_a_common_lease_the_sending_mark_still_sends_nobody_twice(
    make_emulator_app: MakeApp, shared_ledger: SqlLedgerStore
) -> None:
    """The reviewer's race: the second run discards the first run's PLANNED batches and plans
    them again while the first waits for a send slot. Leases on different scopes do not keep
    them apart here; the compare-and-set on SENDING must."""
    async with sync_env(make_emulator_app, shared_ledger, **SLOW) as env:
        first = asyncio.create_task(
            env.run(people(ROWS), run_id="run-A", lease_scope="scope-A", **ONE_AT_A_TIME)
        )
        await _once_sending(env)
        second = await env.run(people(ROWS), run_id="run-B", lease_scope="scope-B", **ONE_AT_A_TIME)
        done = await first
        results: list[SyncResult] = [done, second]
        skipped = [h for r in results for h in r.skipped_batches]
        assert skipped, "the race did not happen: the second run never met the first's batches"
        assert {h.reason for h in skipped} == {"CLAIMED_BY_ANOTHER_RUN"}
        await _assert_everyone_added_once(env)
        # Only the sends are guaranteed here: without a common lease the second run takes the
        # first one's in-flight batches for a crash's (HELD) and records them so. The lease is
        # what keeps the record right; this test is about the safety net under it.


async def test_an_expired_lease_of_a_crashed_run_is_taken_over(
    make_emulator_app: MakeApp, shared_ledger: SqlLedgerStore
) -> None:
    now = 1_000_000.0
    crashed = shared_ledger.acquire_lease("ledger", "dead-run", description="x", now=now, ttl_s=60)
    assert crashed.holder == "dead-run"
    async with sync_env(make_emulator_app, shared_ledger, notify=False) as env:
        # The engine reads the wall clock for expiries: the dead run's lease is still valid...
        with pytest.raises(LeaseHeldError, match="dead-run"):
            await env.run(people(8), wall_clock=lambda: now + 30, **ONE_AT_A_TIME)
        assert env.add_requests() == 0
        # ... and once it has expired, it is taken over.
        result = await env.run(people(8), wall_clock=lambda: now + 61, **ONE_AT_A_TIME)
        assert result.delivered == 8
    taken = shared_ledger.acquire_lease("ledger", "next", description="y", now=now + 62, ttl_s=1)
    assert taken.holder == "next"  # released by the run that took it over


def test_claim_and_sending_mark_are_compare_and_sets(shared_ledger: SqlLedgerStore) -> None:
    record = BatchRecord("b1", AUDIENCE, PARTITION, CAMPAIGN, 0, 1, BatchState.PLANNED)
    shared_ledger.plan_batches([record], [BatchMember("b1", "p1", "EMAIL", "a@x.com", True)])
    assert shared_ledger.mark_sending("b1", claimed_by="run-a") is False  # not claimed yet
    assert shared_ledger.claim_batch("b1", "run-a") is True
    assert shared_ledger.claim_batch("b1", "run-b") is False  # two runs never take one batch
    assert shared_ledger.mark_sending("b1", claimed_by="run-b") is False  # not run-b's claim
    assert shared_ledger.mark_sending("b1", claimed_by="run-a") is True
    assert shared_ledger.mark_sending("b1", claimed_by="run-a") is False  # already SENDING
    assert shared_ledger.mark_sending("gone") is False
    # Answered "not processed" (a 429): back to the claim, only by its owner.
    assert shared_ledger.unmark_sending("b1", "run-b") is False
    assert shared_ledger.unmark_sending("b1", "run-a") is True
    (stored,) = shared_ledger.batches(AUDIENCE, PARTITION, CAMPAIGN)
    assert (stored.state, stored.claimed_by) == (BatchState.CLAIMED, "run-a")
    # A re-send takes a HELD batch, never a CLAIMED or PLANNED one, and flags it re-sent.
    assert shared_ledger.mark_sending("b1", claimed_by="run-a")
    held = dataclasses.replace(stored, state=BatchState.HELD, reason="AMBIGUOUS_SEND")
    shared_ledger.update_batches([held])
    assert shared_ledger.mark_sending("b1") is False
    assert shared_ledger.mark_sending("b1", (BatchState.HELD,), resend=True) is True
    (stored,) = shared_ledger.batches(AUDIENCE, PARTITION, CAMPAIGN)
    assert (stored.state, stored.resent) == (BatchState.SENDING, True)


def test_lease_is_exclusive_renewable_and_released(shared_ledger: SqlLedgerStore) -> None:
    take = shared_ledger.acquire_lease
    assert take("s", "a", description="A", now=100.0, ttl_s=10).holder == "a"
    held = take("s", "b", description="B", now=105.0, ttl_s=10)
    assert (held.holder, held.description, held.expires_at) == ("a", "A", 110.0)
    assert shared_ledger.renew_lease("s", "a", now=108.0, ttl_s=10) is True
    assert take("s", "b", description="B", now=115.0, ttl_s=10).holder == "a"  # renewed to 118
    assert take("t", "b", description="B", now=115.0, ttl_s=10).holder == "b"  # other scope
    assert take("s", "b", description="B", now=119.0, ttl_s=10).holder == "b"  # expired
    assert shared_ledger.renew_lease("s", "a", now=119.5, ttl_s=10) is False  # lost it
    shared_ledger.release_lease("s", "a")  # not the holder: no effect
    assert take("s", "c", description="C", now=120.0, ttl_s=10).holder == "b"
    shared_ledger.release_lease("s", "b")
    assert take("s", "c", description="C", now=120.0, ttl_s=10).holder == "c"


# -- the heartbeat ----------------------------------------------------------------------------

HEARTBEAT: dict[str, Any] = {"lease_ttl_s": 1.0, "lease_renew_s": 0.25}


class StallingLedger(SqlLedgerStore):
    """A shared ledger whose lease renewals can be made to fail (a stalled warehouse), and
    which records, at each SENDING claim, whether the claiming run's lease was still valid."""

    def __init__(self, warehouse: Warehouse) -> None:
        super().__init__(warehouse)
        self.stalled = False
        self.claims: list[bool] = []

    def renew_lease(self, scope: str, holder: str, *, now: float, ttl_s: float) -> bool:
        if self.stalled:
            raise RuntimeError("warehouse stalled")
        return super().renew_lease(scope, holder, now=now, ttl_s=ttl_s)

    def mark_sending(self, *args: Any, **kwargs: Any) -> bool:
        rows = self.warehouse.fetch_all(f"SELECT expires_at FROM {self.lease_table}")
        self.claims.append(bool(rows) and float(rows[0][0]) > time.time())
        return bool(super().mark_sending(*args, **kwargs))


@pytest.fixture(params=["duckdb", "postgres"])
def stalling_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> StallingLedger:
    if request.param == "duckdb":
        wh: Warehouse = DuckDBWarehouse(tmp_path / "ledger.duckdb")
    else:
        wh = PostgresWarehouse(request.getfixturevalue("postgres_dsn"))
    request.addfinalizer(wh.close)
    ledger = StallingLedger(wh)
    ledger.ensure_schema()
    return ledger


async def test_a_live_runs_lease_is_never_taken_while_its_heartbeat_works(
    make_emulator_app: MakeApp, shared_ledger: SqlLedgerStore
) -> None:
    slow: dict[str, Any] = {"faults": FaultSettings(latency_ms=350), "notify": False}
    async with sync_env(make_emulator_app, shared_ledger, **slow) as env:
        started = time.monotonic()
        first = asyncio.create_task(
            env.run(people(ROWS), run_id="run-A", **HEARTBEAT, **ONE_AT_A_TIME)
        )
        await _once_sending(env)
        attempts = 0
        while not first.done():  # another run asks again and again, with the real clock
            lease = shared_ledger.acquire_lease(
                "ledger", "run-B", description="B", now=time.time(), ttl_s=1.0
            )
            assert lease.holder == "run-A", "the live run's lease was taken"
            attempts += 1
            await asyncio.sleep(0.1)
        done = await first
        assert time.monotonic() - started > 3 * HEARTBEAT["lease_ttl_s"]  # renewed, not lucky
        assert attempts >= 10
        assert done.delivered == ROWS
        await _assert_everyone_added_once(env)


async def test_a_run_whose_heartbeat_stalls_stops_sending_before_its_lease_expires(
    make_emulator_app: MakeApp, stalling_ledger: StallingLedger
) -> None:
    slow: dict[str, Any] = {"faults": FaultSettings(latency_ms=100), "notify": False}
    async with sync_env(make_emulator_app, stalling_ledger, **slow) as env:
        first = asyncio.create_task(
            env.run(people(ROWS), run_id="run-A", **HEARTBEAT, **ONE_AT_A_TIME)
        )
        for _ in range(500):
            if env.add_requests() >= 2:
                break
            await asyncio.sleep(0.01)
        stalling_ledger.stalled = True
        with pytest.raises(LeaseLostError, match="run-A"):
            await first
        # Every claim was made under a valid lease; the run stopped well before the end.
        assert stalling_ledger.claims and all(stalling_ledger.claims)
        assert env.add_requests() < ROWS // BATCH
        states = {b.state for b in stalling_ledger.batches(AUDIENCE, PARTITION, CAMPAIGN)}
        assert BatchState.PLANNED in states
        # The next run takes the expired lease over and sends the rest, nobody twice.
        stalling_ledger.stalled = False
        second = await env.run(
            people(ROWS), run_id="run-B", lease_wait_s=5.0, lease_poll_s=0.05, **ONE_AT_A_TIME
        )
        assert second.delivered == ROWS
        await _assert_everyone_added_once(env)


def test_lease_options_are_checked() -> None:
    assert SyncOptions().lease_ttl_s <= 10 and SyncOptions().renew_interval_s == 1.5
    assert SyncOptions(lease_ttl_s=2).renew_interval_s == 0.5
    with pytest.raises(ValueError, match="lease_renew_s"):
        SyncOptions(lease_ttl_s=2, lease_renew_s=1.5)
