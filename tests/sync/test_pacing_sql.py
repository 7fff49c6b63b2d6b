"""The PostgreSQL pacing record: budgets on separate connections pace as one account.

Each budget has a record on a connection of its own, as two hosts would; they meet only in the
``moments_pacing_record`` row. Real clock: the record converts between each process's
monotonic clock and the database's.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest

from moments_pipeline.dagster import MomentsResource
from moments_pipeline.infobip import RateBudget
from moments_pipeline.sync import PACING_TABLE, SqlPacingRecord
from moments_pipeline.warehouse import DuckDBWarehouse, PostgresWarehouse

ACCOUNT = "https://pacing-sql.api.infobip.com#00aa11bb22cc"


async def test_two_connections_pace_as_one_account(postgres_dsn: str) -> None:
    warehouses = [PostgresWarehouse(postgres_dsn) for _ in range(2)]
    try:
        budgets = [
            RateBudget(10, safety_margin=0.01, record=SqlPacingRecord(wh, ACCOUNT))
            for wh in warehouses
        ]
        starts: list[float] = []

        async def one(budget: RateBudget) -> None:
            await budget.acquire()
            starts.append(time.monotonic())

        began = time.monotonic()
        await asyncio.gather(*(one(b) for b in budgets for _ in range(15)))
        took = time.monotonic() - began
        starts.sort()
        assert len(starts) == 30
        # Never 11 in a second together (each alone would allow 10 of its own)...
        assert max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts) <= 10
        # ... and together at the rate: 30 starts in about 3 s, not 1.5 s (unshared) or 6 s.
        assert 2.8 < took < 4.0, took
        [(state,)] = warehouses[0].fetch_all(f"SELECT state FROM {PACING_TABLE}")
        assert "key" not in state and orjson.loads(state)["reservations"] == []
    finally:
        for wh in warehouses:
            wh.close()


def test_reservations_of_a_vanished_process_expire(postgres_dsn: str) -> None:
    crashed = PostgresWarehouse(postgres_dsn)
    alive = PostgresWarehouse(postgres_dsn)
    try:
        gone = RateBudget(10, record=SqlPacingRecord(crashed, ACCOUNT))
        for _ in range(10):  # ten slots reserved, then the process "dies" holding them
            while gone.try_reserve() > 0:
                time.sleep(0.02)
        crashed.close()
        budget = RateBudget(10, record=SqlPacingRecord(alive, ACCOUNT, reservation_ttl_s=1.0))
        assert budget.try_reserve() > 0  # the window is full of the dead reservations
        time.sleep(1.1)
        assert budget.try_reserve() == 0.0
    finally:
        alive.close()


def test_the_record_needs_postgresql(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    try:
        with pytest.raises(ValueError, match="PostgreSQL"):
            SqlPacingRecord(warehouse, ACCOUNT)
    finally:
        warehouse.close()


def test_the_resource_uses_it_and_never_shows_the_url(postgres_dsn: str) -> None:
    # A password in the URL (libpq ignores it here: the test server trusts local users).
    url = f"{postgres_dsn} password=pw-never-shown-42"
    resource = MomentsResource(
        base_url="https://pacing-sql-resource.api.infobip.com", api_key="k-9", pacing_url=url
    )
    record = resource.get_client().rate_budget.record
    assert isinstance(record, SqlPacingRecord)
    assert "pw-never-shown-42" not in repr(resource)
    assert "pw-never-shown-42" not in repr(record)
