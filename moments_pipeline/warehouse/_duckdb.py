"""DuckDB implementation of ``Warehouse``: the embedded default (a file or ``:memory:``).

One connection guarded by a re-entrant lock: every call takes the lock and ``transaction()``
holds it for the whole block, so threads of one process never interleave inside a transaction
(DuckDB would otherwise abort one of two conflicting writers). Frames are written through
DuckDB's zero-copy registration of the pandas frame.

The connection is opened hardened (``HARDENED_CONFIG``): no file access beyond the database
itself, no extension installing or autoloading, no Python replacement scans, and the
configuration locked so no SQL can switch it back. DuckDB applies these per database instance
and refuses a second connection to the same file with another configuration in one process, so
every connection is opened this way; registering a pandas frame is not file access and still
works. The audience source additionally runs in a ``READ ONLY`` transaction, rolled back after.
DuckDB has no statement timeout.

DuckDB admits one writing process per file: opening a file another process holds waits, with
a bounded backoff (``lock_wait_s``), instead of failing, so two runs on one file take turns
step by step (each step holds its connection only while it runs).
"""

from __future__ import annotations

import threading
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from moments_pipeline.warehouse._days import day_kind, summarize_days
from moments_pipeline.warehouse._protocol import Params, WarehouseError, WriteMode
from moments_pipeline.warehouse._query_check import SqlDialect
from moments_pipeline.warehouse._source_sql import (
    SourceDay,
    source_day_read_sql,
    source_read_sql,
    source_schema_sql,
)
from moments_pipeline.warehouse._sql import quote_identifier, quote_table, split_table

#: Connection settings: the warehouse file is all a connection may touch.
HARDENED_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "enable_external_access": False,
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "python_enable_replacements": False,
    "lock_configuration": True,
    # The ledger's writes (stored callback reports, statuses) would otherwise checkpoint every
    # 16 MB of WAL, and a checkpoint holds the connection for hundreds of ms while a send
    # waits to be marked: checkpoint less often (the WAL is replayed on open after a crash).
    "checkpoint_threshold": "256MB",
}


def _held_by_another_process(exc: duckdb.Error) -> bool:
    # DuckDB's words for a file locked by another process (no distinct exception class).
    return "Could not set lock on file" in str(exc)


def _open_error(path: str, exc: duckdb.Error, lock_wait_s: float) -> str:
    if _held_by_another_process(exc):
        return (
            f"cannot open DuckDB database {path}: another process holds it (DuckDB admits one "
            f"writing process per file) and did not let go within {lock_wait_s:g} s; {exc}"
        )
    return f"cannot open DuckDB database {path}: {exc}"


class DuckDBWarehouse:
    """A DuckDB database file (or ``:memory:``) behind the ``Warehouse`` protocol.

    Args:
        path: Database file, created when missing, or ``":memory:"``.
        read_only: Open the file read-only.
        lock_wait_s: How long to wait while another process holds the file (DuckDB admits
            one writing process per file; every step holds it only while it runs, so a second
            run's step waits for the first's to end rather than failing). 0: fail at once.
    """

    def __init__(
        self, path: str | Path = ":memory:", *, read_only: bool = False, lock_wait_s: float = 0.0
    ) -> None:
        self._path = str(path)
        self._lock = threading.RLock()
        self._depth = 0
        self.lock_waited_s = 0.0
        deadline = time.monotonic() + lock_wait_s
        delay = 0.05
        while True:
            try:
                self._conn = duckdb.connect(self._path, read_only=read_only, config=HARDENED_CONFIG)
                break
            except duckdb.IOException as exc:
                left = deadline - time.monotonic()
                if not _held_by_another_process(exc) or left <= 0:
                    raise WarehouseError(_open_error(self._path, exc, lock_wait_s)) from None
                pause = min(delay, left)
                time.sleep(pause)
                self.lock_waited_s += pause
                delay = min(delay * 2, 1.0)
            except duckdb.Error as exc:
                raise WarehouseError(f"cannot open DuckDB database {self._path}: {exc}") from None

    def __repr__(self) -> str:
        return f"DuckDBWarehouse(path={self._path!r})"

    @property
    def dialect(self) -> SqlDialect:
        """``duckdb``."""
        return "duckdb"

    def read_source(
        self,
        *,
        table: str | None = None,
        query: str | None = None,
        columns: Sequence[str] | None = None,
        day: SourceDay | None = None,
    ) -> pd.DataFrame:
        """Read an audience source read-only (see ``Warehouse.read_source``)."""
        if day is None:
            sql = source_read_sql("duckdb", table=table, query=query, columns=columns)
        else:
            kind = day_kind(self.source_schema(table=table, query=query), day.column)
            sql = source_day_read_sql(
                "duckdb", table=table, query=query, columns=columns, kind=kind, source_day=day
            )
        frame = self._read_only_frame(sql)
        return frame if query is None or columns is None else _keep(frame, columns)

    def source_schema(
        self, *, table: str | None = None, query: str | None = None
    ) -> list[tuple[str, str]]:
        """``(column, type)`` of a source, from a zero-row read-only statement."""
        sql = source_schema_sql("duckdb", table=table, query=query)
        with self._read_only() as conn:
            description = _run(conn, sql).description or []
        return [(str(d[0]), str(d[1])) for d in description]

    def source_day_summary(
        self,
        *,
        table: str | None = None,
        query: str | None = None,
        day_column: str | None,
        watermark_column: str,
        timezone: str = "UTC",
        start: date | None = None,
    ) -> list[tuple[date | None, int, str | None]]:
        """Per-day row count and max watermark (see ``Warehouse.source_day_summary``)."""
        return summarize_days(
            "duckdb",
            self.source_schema,
            self._read_only_frame,
            table=table,
            query=query,
            day_column=day_column,
            watermark_column=watermark_column,
            timezone=timezone,
            start=start,
        )

    def _read_only_frame(self, sql: str) -> pd.DataFrame:
        """Run ``sql`` (unchecked: callers check it) in a rolled-back read-only transaction."""
        with self._read_only() as conn:
            return _exact_frame(conn, _run(conn, sql))

    @contextmanager
    def _read_only(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            if self._depth:
                raise WarehouseError("a source is read outside of any open transaction")
            self._conn.execute("BEGIN TRANSACTION READ ONLY")
            try:
                yield self._conn
            finally:
                self._conn.execute("ROLLBACK")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block in one transaction (nested blocks join the outer one)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN TRANSACTION")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self._conn.execute("COMMIT")

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement with ``?`` parameters; returns the affected row count or -1."""
        with self._lock:
            cursor = self._conn.execute(sql, list(params))
            if cursor.description and cursor.description[0][0] == "Count":
                row = cursor.fetchone()
                return int(row[0]) if row else -1
            return -1

    def execute_many(self, sql: str, rows: Sequence[Params]) -> None:
        """Run one statement per parameter row, atomically."""
        with self.transaction():
            if rows:
                self._conn.executemany(sql, [list(r) for r in rows])

    def fetch_all(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Run a query with ``?`` parameters and return every row."""
        with self._lock:
            return self._conn.execute(sql, list(params)).fetchall()

    def read_query(self, sql: str, params: Params = ()) -> pd.DataFrame:
        """Run a query with ``?`` parameters and return a DataFrame."""
        with self._lock:
            return _exact_frame(self._conn, self._conn.execute(sql, list(params)))

    def read_table(self, table: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Read the given columns (all when None) of a table."""
        cols = "*" if columns is None else ", ".join(quote_identifier(c) for c in columns)
        return self.read_query(f"SELECT {cols} FROM {quote_table(table)}")  # noqa: S608

    def write_frame(self, table: str, frame: pd.DataFrame, *, mode: WriteMode = "append") -> int:
        """Write a frame; creates the table (and schema) when missing, matches columns by name."""
        if mode not in ("append", "replace"):
            raise ValueError(f"mode must be 'append' or 'replace', not {mode!r}")
        target = quote_table(table)
        for column in frame.columns:
            quote_identifier(str(column))
        parts = split_table(table)
        view = f"_frame_{uuid.uuid4().hex}"
        with self.transaction():
            if len(parts) >= 2:
                schema = ".".join(quote_identifier(p) for p in parts[:-1])
                self._conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            self._conn.register(view, frame)
            try:
                if mode == "replace" or not self.table_exists(table):
                    self._conn.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {view}")  # noqa: S608
                else:
                    self._conn.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {view}")  # noqa: S608
            finally:
                self._conn.unregister(view)
        return len(frame)

    def table_exists(self, table: str) -> bool:
        """Whether the table or view exists (unqualified names look in ``main``)."""
        parts = split_table(table)
        name = parts[-1]
        schema = parts[-2] if len(parts) >= 2 else "main"
        sql = (
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = ? AND table_name = ?"
        )
        params: list[str] = [schema, name]
        if len(parts) == 3:
            sql += " AND table_catalog = ?"
            params.append(parts[0])
        rows = self.fetch_all(sql, params)
        return bool(rows and rows[0][0])

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


def _run(conn: duckdb.DuckDBPyConnection, sql: str) -> duckdb.DuckDBPyConnection:
    try:
        return conn.execute(sql)
    except duckdb.Error as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WarehouseError(f"source read failed: {first_line}") from None


def _keep(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise WarehouseError(f"the source has no column(s) {missing}")
    return frame[list(columns)]


def _exact_frame(
    conn: duckdb.DuckDBPyConnection, result: duckdb.DuckDBPyConnection
) -> pd.DataFrame:
    """The result as pandas, DECIMAL and HUGEINT columns as exact ``decimal.Decimal`` objects.

    DuckDB's own pandas conversion turns them into float64, which rounds beyond 2**53: two
    different customer ids would become one (issue 8). Other columns keep DuckDB's conversion.
    """
    types = [str(d[1]).upper() for d in result.description or []]
    exact = [i for i, t in enumerate(types) if t.startswith(("DECIMAL", "HUGEINT", "UHUGEINT"))]
    if not exact:
        return result.df()
    with warnings.catch_warnings():
        # "an extra copy of the rows": accepted, only for results holding exact numbers.
        warnings.simplefilter("ignore", UserWarning)
        table = result.to_arrow_table()
    assert table is not None  # a result with a description has a table
    frame = conn.from_arrow(table).df()
    for i in exact:
        frame.isetitem(i, pd.Series(table.column(i).to_pylist(), dtype=object))
    return frame
