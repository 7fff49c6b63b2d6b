"""Fixtures of the sync tests: the SQL ledger on both real warehouses, and the in-memory one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from moments_pipeline.sync import SqlLedgerStore
from moments_pipeline.warehouse import DuckDBWarehouse, PostgresWarehouse, Warehouse


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    """A fresh DuckDB file in tmp_path, or a fresh database on the session's PostgreSQL."""
    if request.param == "duckdb":
        wh: Warehouse = DuckDBWarehouse(tmp_path / "ledger.duckdb")
    else:
        wh = PostgresWarehouse(request.getfixturevalue("postgres_dsn"))
    try:
        yield wh
    finally:
        wh.close()


@pytest.fixture
def sql_ledger(warehouse: Warehouse) -> SqlLedgerStore:
    """The SQL ledger, schema created, on the parametrized warehouse."""
    ledger = SqlLedgerStore(warehouse)
    ledger.ensure_schema()
    return ledger
