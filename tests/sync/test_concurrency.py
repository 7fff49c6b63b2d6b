"""Two runs on one ledger at once: the run lease and the SENDING compare-and-set.

Both engines run in one event loop against the in-process emulator (with latency, so the first
run is mid-sync when the second starts) and share one ``SqlLedgerStore`` on DuckDB and on
PostgreSQL. Whatever the interleaving, nobody is added twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
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
    SqlLedgerStore,
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


def test_sending_mark_is_a_compare_and_set(shared_ledger: SqlLedgerStore) -> None:
    record = BatchRecord("b1", AUDIENCE, PARTITION, CAMPAIGN, 0, 1, BatchState.PLANNED)
    shared_ledger.plan_batches([record], [BatchMember("b1", "p1", "EMAIL", "a@x.com", True)])
    assert shared_ledger.mark_sending("b1") is True
    assert shared_ledger.mark_sending("b1") is False  # already SENDING: someone else's send
    assert shared_ledger.mark_sending("gone") is False
    # A re-send claims a HELD batch, not a PLANNED one.
    shared_ledger.update_batches([dataclasses.replace(record, state=BatchState.HELD)])
    assert shared_ledger.mark_sending("b1") is False
    assert shared_ledger.mark_sending("b1", (BatchState.HELD,)) is True
    (stored,) = shared_ledger.batches(AUDIENCE, PARTITION, CAMPAIGN)
    assert stored.state is BatchState.SENDING


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
