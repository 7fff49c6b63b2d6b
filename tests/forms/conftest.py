"""Fixtures of the forms tests: the SQL ledger on both real warehouses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from moments_pipeline.sync import SqlLedgerStore
from moments_pipeline.warehouse import DuckDBWarehouse, PostgresWarehouse, Warehouse


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    """A fresh DuckDB file, or a fresh database on the session's PostgreSQL."""
    if request.param == "duckdb":
        wh: Warehouse = DuckDBWarehouse(tmp_path / "ledger.duckdb")
    else:
        wh = PostgresWarehouse(request.getfixturevalue("postgres_dsn"))
    try:
        yield wh
    finally:
        wh.close()


@pytest.fixture
def ledger(warehouse: Warehouse) -> SqlLedgerStore:
    """The SQL ledger, schema created."""
    store = SqlLedgerStore(warehouse)
    store.ensure_schema()
    return store
