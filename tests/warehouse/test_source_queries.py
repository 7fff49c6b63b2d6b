"""The source path on both engines: hostile queries never run, ordinary ones do, and the
runtime layer alone (no parser) refuses file reads and writes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from moments_pipeline.sync import SqlLedgerStore
from moments_pipeline.warehouse import (
    DuckDBWarehouse,
    PostgresWarehouse,
    UnsafeQueryError,
    Warehouse,
    WarehouseError,
    check_select_query,
    connect_warehouse,
)
from tests.warehouse.hostile_queries import ALLOWED, HOSTILE, LEDGER, Hostile


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def source_wh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    """A warehouse with sample tables and a ledger holding a few status rows."""
    if request.param == "duckdb":
        wh: Warehouse = connect_warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    else:
        wh = connect_warehouse(request.getfixturevalue("postgres_dsn"))
    try:
        _ledger_with_rows(wh)
        wh.write_frame(
            "customers",
            pd.DataFrame(
                {
                    "id": [1, 2, 3],
                    "email": ["a@example.com", "B@example.com", None],
                    "first_name": ["Ann", None, "Cy"],
                }
            ),
        )
        wh.write_frame(
            "orders",
            pd.DataFrame(
                {
                    "id": [10, 11],
                    "customer_id": [1, 1],
                    "total": [12.5, 30.0],
                    "created_at": pd.to_datetime(["2026-01-02 10:00", "2026-02-03 11:00"]),
                }
            ),
        )
        yield wh
    finally:
        wh.close()


def _ledger_with_rows(wh: Warehouse) -> None:
    SqlLedgerStore(wh).ensure_schema()
    wh.execute_many(
        f"INSERT INTO {LEDGER} (campaign_id, person_key, audience, partition_key, status, "
        "delivered) VALUES (?, ?, ?, ?, ?, ?)",
        [[200000000000001, f"p{i}", "vip", "", "ACCEPTED", True] for i in range(3)],
    )


def _ledger_rows(wh: Warehouse) -> int:
    return int(wh.fetch_all(f"SELECT count(*) FROM {LEDGER}")[0][0])


@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda h: h.id)
def test_hostile_query_is_refused_before_anything_runs(
    source_wh: Warehouse, hostile: Hostile
) -> None:
    before = _ledger_rows(source_wh)
    assert before == 3
    with pytest.raises(UnsafeQueryError):
        source_wh.read_source(query=hostile.sql)
    with pytest.raises(UnsafeQueryError):
        source_wh.source_schema(query=hostile.sql)
    assert _ledger_rows(source_wh) == before


@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda h: h.id)
def test_hostile_query_message_names_what_is_refused(hostile: Hostile) -> None:
    with pytest.raises(UnsafeQueryError) as info:
        check_select_query(hostile.sql)
    assert hostile.message in str(info.value)
    for dialect in ("duckdb", "postgres"):
        with pytest.raises(UnsafeQueryError):
            check_select_query(hostile.sql, dialect)


@pytest.mark.parametrize("sql", ALLOWED)
def test_ordinary_queries_pass_and_run(source_wh: Warehouse, sql: str) -> None:
    assert check_select_query(sql) == sql
    assert check_select_query(sql, source_wh.dialect) == sql
    frame = source_wh.read_source(query=sql)
    schema = source_wh.source_schema(query=sql)
    assert [name for name, _ in schema] == list(frame.columns)
    assert _ledger_rows(source_wh) == 3


def test_table_source_reads_only_the_named_columns(source_wh: Warehouse) -> None:
    source_wh.execute('ALTER TABLE customers ADD COLUMN "first name" VARCHAR')
    frame = source_wh.read_source(table="customers", columns=["id", "email"])
    assert list(frame.columns) == ["id", "email"]
    assert sorted(frame["id"].tolist()) == [1, 2, 3]
    names = [name for name, _ in source_wh.source_schema(table="customers")]
    assert "first name" in names


def test_query_source_keeps_the_asked_columns(source_wh: Warehouse) -> None:
    frame = source_wh.read_source(
        query='SELECT id, email, first_name AS "first name" FROM customers', columns=["email"]
    )
    assert list(frame.columns) == ["email"]
    with pytest.raises(WarehouseError, match="emial"):
        source_wh.read_source(query="SELECT email FROM customers", columns=["emial"])


# The runtime layer alone: the low-level read path, given SQL the parser would have refused.

RUNTIME_FILE_READS = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/proc/self/environ')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM glob('/etc/*')",
]


@pytest.mark.parametrize("sql", RUNTIME_FILE_READS)
def test_duckdb_runtime_refuses_file_access(tmp_path: Path, sql: str) -> None:
    wh = DuckDBWarehouse(tmp_path / "wh.duckdb")
    try:
        with pytest.raises(WarehouseError) as info:
            wh._read_only_frame(sql)
        assert "root:" not in str(info.value)
    finally:
        wh.close()


@pytest.mark.parametrize(
    "sql",
    [
        "ATTACH '/tmp/moments-other.duckdb' AS other",
        "COPY customers TO '/tmp/moments-leak.csv'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
    ],
)
def test_duckdb_connection_refuses_escapes_even_outside_the_source_path(
    tmp_path: Path, sql: str
) -> None:
    wh = DuckDBWarehouse(tmp_path / "wh.duckdb")
    try:
        wh.write_frame("customers", pd.DataFrame({"id": [1]}))
        with pytest.raises(duckdb.Error, match=r"disabled|locked"):
            wh.execute(sql)
        assert not Path("/tmp/moments-leak.csv").exists()
    finally:
        wh.close()


def test_duckdb_runtime_refuses_writes(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path / "wh.duckdb")
    try:
        _ledger_with_rows(wh)
        for sql in (
            f"WITH d AS (DELETE FROM {LEDGER} RETURNING 1) SELECT * FROM d",
            f"DELETE FROM {LEDGER}",
            "CREATE TABLE stolen AS SELECT 1 AS x",
        ):
            with pytest.raises(WarehouseError, match="read-only"):
                wh._read_only_frame(sql)
        assert _ledger_rows(wh) == 3
        assert not wh.table_exists("stolen")
        # The connection is usable afterwards: the read-only transaction was rolled back.
        wh.execute("CREATE TABLE after_source (x INTEGER)")
        assert wh.table_exists("after_source")
    finally:
        wh.close()


@pytest.mark.postgres
def test_postgres_runtime_refuses_writes(postgres_dsn: str) -> None:
    wh = PostgresWarehouse(postgres_dsn)
    try:
        _ledger_with_rows(wh)
        wh.execute("CREATE SEQUENCE moments_seq")
        for sql in (
            f"WITH d AS (DELETE FROM {LEDGER} RETURNING 1) SELECT * FROM d",
            f"DELETE FROM {LEDGER}",
            "CREATE TABLE stolen AS SELECT 1 AS x",
            "SELECT nextval('moments_seq')",
        ):
            with pytest.raises(WarehouseError, match="read-only transaction"):
                wh._read_only_frame(sql)
        assert _ledger_rows(wh) == 3
        assert not wh.table_exists("stolen")
        wh.execute("CREATE TABLE after_source (x INTEGER)")
        assert wh.table_exists("after_source")
    finally:
        wh.close()


@pytest.mark.postgres
def test_postgres_source_read_has_a_statement_timeout(postgres_dsn: str) -> None:
    wh = PostgresWarehouse(postgres_dsn, source_timeout_s=0.2)
    try:
        with pytest.raises(WarehouseError, match="statement timeout"):
            wh._read_only_frame("SELECT pg_sleep(5)")
        # SET LOCAL: the session's own timeout is untouched afterwards.
        assert wh.fetch_all("SHOW statement_timeout") == [("0",)]
    finally:
        wh.close()


def test_source_is_not_read_inside_an_open_transaction(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path / "wh.duckdb")
    try:
        wh.write_frame("customers", pd.DataFrame({"id": [1]}))
        with pytest.raises(WarehouseError, match="outside"), wh.transaction():
            wh.read_source(table="customers")
    finally:
        wh.close()
