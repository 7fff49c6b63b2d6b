"""Both warehouses against real engines: a DuckDB file in tmp_path and the session PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from moments_pipeline.warehouse import (
    DuckDBWarehouse,
    PostgresWarehouse,
    UnsafeIdentifierError,
    Warehouse,
    WarehouseError,
    connect_warehouse,
    quote_identifier,
    quote_table,
)

HOSTILE = ["t; drop table x", 'a"b', "x--", "", "a b", "1abc", "ünïcode", "s.t.u.v", "a.", "x'y"]


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    if request.param == "duckdb":
        wh: Warehouse = connect_warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    else:
        wh = connect_warehouse(request.getfixturevalue("postgres_dsn"))
    try:
        yield wh
    finally:
        wh.close()


def sample() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3],
            "name": ["Zoë", None, "  padded "],
            "score": [1.5, float("nan"), -2.0],
            "active": [True, False, True],
        }
    )


def test_round_trip_preserves_values(warehouse: Warehouse) -> None:
    frame = sample()
    assert warehouse.write_frame("crm.people", frame) == 3
    back = warehouse.read_table("crm.people").sort_values("id").reset_index(drop=True)
    assert back["id"].tolist() == [1, 2, 3]
    assert back["name"].tolist()[0] == "Zoë" and pd.isna(back["name"][1])
    assert back["name"][2] == "  padded "
    assert back["score"][0] == 1.5 and pd.isna(back["score"][1])
    assert back["active"].tolist() == [True, False, True]
    assert warehouse.table_exists("crm.people")
    assert not warehouse.table_exists("crm.nobody")


def test_append_matches_columns_by_name_and_replace_overwrites(warehouse: Warehouse) -> None:
    frame = sample()
    warehouse.write_frame("people", frame)
    warehouse.write_frame("people", frame[["score", "active", "name", "id"]], mode="append")
    assert warehouse.fetch_all("SELECT count(*) FROM people") == [(6,)]
    assert warehouse.fetch_all("SELECT sum(id) FROM people") == [(12,)]
    warehouse.write_frame("people", frame.head(1), mode="replace")
    assert warehouse.read_table("people", ["id", "name"]).to_dict("records") == [
        {"id": 1, "name": "Zoë"}
    ]


def test_list_columns_round_trip(warehouse: Warehouse) -> None:
    frame = pd.DataFrame({"k": ["a", "b"], "emails": [["x@y.com", "z@y.com"], []]})
    warehouse.write_frame("lists", frame)
    rows = warehouse.fetch_all("SELECT k FROM lists ORDER BY k")
    assert rows == [("a",), ("b",)]


def test_ledger_style_sql_with_qmark_params(warehouse: Warehouse) -> None:
    warehouse.execute(
        "CREATE TABLE outbox (batch_id VARCHAR PRIMARY KEY, operation_id VARCHAR, n INTEGER)"
    )
    insert = (
        "INSERT INTO outbox (batch_id, operation_id, n) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
    )
    assert warehouse.execute(insert, ["b1", None, 10]) == 1
    assert warehouse.execute(insert, ["b1", None, 99]) == 0
    upsert = (
        "INSERT INTO outbox (batch_id, operation_id, n) VALUES (?, ?, ?) "
        "ON CONFLICT (batch_id) DO UPDATE SET operation_id = excluded.operation_id"
    )
    warehouse.execute(upsert, ["b1", "op-1", 0])
    assert warehouse.fetch_all("SELECT operation_id, n FROM outbox WHERE batch_id = ?", ["b1"]) == [
        ("op-1", 10)
    ]
    warehouse.execute_many(insert, [["b2", None, 1], ["b3", None, 2]])
    frame = warehouse.read_query("SELECT batch_id FROM outbox WHERE n < ? ORDER BY batch_id", [5])
    assert frame["batch_id"].tolist() == ["b2", "b3"]
    assert warehouse.fetch_all("SELECT '100%' || ?", ["!"]) == [("100%!",)]


def test_transaction_rolls_back_on_error(warehouse: Warehouse) -> None:
    warehouse.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
    with pytest.raises(RuntimeError), warehouse.transaction():
        warehouse.execute("INSERT INTO t VALUES (?)", [1])
        raise RuntimeError("boom")
    assert warehouse.fetch_all("SELECT count(*) FROM t") == [(0,)]
    with warehouse.transaction():
        warehouse.execute("INSERT INTO t VALUES (?)", [1])
        warehouse.execute("INSERT INTO t VALUES (?)", [2])
    assert warehouse.fetch_all("SELECT count(*) FROM t") == [(2,)]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused(warehouse: Warehouse, name: str) -> None:
    warehouse.write_frame("safe", pd.DataFrame({"a": [1]}))
    with pytest.raises(UnsafeIdentifierError):
        warehouse.read_table(name)
    with pytest.raises(UnsafeIdentifierError):
        warehouse.read_table("safe", [name])
    with pytest.raises(UnsafeIdentifierError):
        warehouse.write_frame(name, pd.DataFrame({"a": [1]}))
    with pytest.raises(UnsafeIdentifierError):
        warehouse.write_frame("safe", pd.DataFrame({name: [1]}))
    with pytest.raises(UnsafeIdentifierError):
        warehouse.table_exists(name)
    assert warehouse.fetch_all("SELECT count(*) FROM safe") == [(1,)]


def test_quoting_helpers() -> None:
    assert quote_identifier("first_name") == '"first_name"'
    assert quote_table("analytics.vip") == '"analytics"."vip"'
    for name in HOSTILE:
        with pytest.raises(UnsafeIdentifierError):
            quote_table(name) if "." in name else quote_identifier(name)


def test_duckdb_is_safe_across_threads(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path / "threads.duckdb")
    wh.execute("CREATE TABLE counter (k INTEGER PRIMARY KEY, n INTEGER)")
    wh.execute("INSERT INTO counter VALUES (1, 0)")
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                with wh.transaction():
                    (n,) = wh.fetch_all("SELECT n FROM counter WHERE k = 1")[0]
                    wh.execute("UPDATE counter SET n = ? WHERE k = 1", [n + 1])
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert wh.fetch_all("SELECT n FROM counter") == [(200,)]
    wh.close()


def test_connect_warehouse_urls(tmp_path: Path) -> None:
    memory = connect_warehouse("duckdb:///:memory:")
    assert isinstance(memory, DuckDBWarehouse)
    memory.close()
    path = tmp_path / "f.duckdb"
    file_wh = connect_warehouse(f"duckdb:///{path}")
    file_wh.write_frame("t", pd.DataFrame({"a": [1]}))
    file_wh.close()
    assert path.exists()
    with pytest.raises(ValueError, match="unsupported warehouse URL scheme 'mysql'") as info:
        connect_warehouse("mysql://user:hunter2@db/x")
    assert "hunter2" not in str(info.value)


def test_postgres_password_never_shown() -> None:
    dsn = "postgresql://svc:Sup3rS3cret@127.0.0.1:1/warehouse?connect_timeout=2"
    with pytest.raises(WarehouseError) as info:
        PostgresWarehouse(dsn)
    assert "Sup3rS3cret" not in str(info.value)
    assert "password=***" in str(info.value)


@pytest.mark.postgres
def test_postgres_repr_hides_password(postgres_dsn: str) -> None:
    info = psycopg.conninfo.conninfo_to_dict(postgres_dsn)
    info["password"] = "Sup3rS3cret"
    wh = PostgresWarehouse(psycopg.conninfo.make_conninfo(**info))
    try:
        assert "Sup3rS3cret" not in repr(wh)
        assert "***" in repr(wh)
    finally:
        wh.close()
