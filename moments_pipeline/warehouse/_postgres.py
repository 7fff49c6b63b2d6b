"""PostgreSQL implementation of ``Warehouse`` (psycopg 3, a real server).

``?`` placeholders are translated to psycopg's ``%s`` (so ``?`` must not appear in literals).
Frames are written with ``COPY ... FROM STDIN``. One autocommit connection guarded by a
re-entrant lock; ``transaction()`` holds the lock for its block. The DSN's password is kept out
of ``repr`` and of every error message.

The audience source runs in ``BEGIN READ ONLY`` with ``SET LOCAL statement_timeout`` and is
rolled back afterwards, so the server refuses a write whatever the query check let through.
Reading files (``pg_read_file``) or other servers (``dblink``) is a matter of privileges: give
the source a role that has SELECT only (README, "Sources").
"""

from __future__ import annotations

import decimal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import Any

import numpy as np
import orjson
import pandas as pd
import psycopg
from psycopg import conninfo
from psycopg.pq import TransactionStatus

from moments_pipeline.warehouse._days import day_kind, summarize_days
from moments_pipeline.warehouse._protocol import Params, WarehouseError, WriteMode
from moments_pipeline.warehouse._query_check import SqlDialect
from moments_pipeline.warehouse._source_sql import (
    SourceDay,
    source_day_read_sql,
    source_read_sql,
    source_schema_sql,
)
from moments_pipeline.warehouse._sql import (
    qmark_to_pyformat,
    quote_identifier,
    quote_table,
    split_table,
)


def redact_dsn(dsn: str) -> str:
    """Return ``dsn`` as ``key=value`` pairs with any password replaced by ``***``."""
    try:
        info = conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return "<unparseable dsn>"
    if "password" in info:
        info["password"] = "***"  # noqa: S105 - a mask, not a secret
    return " ".join(f"{k}={v}" for k, v in sorted(info.items()))


def _pg_type(series: pd.Series) -> str:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "BOOLEAN"
    if pd.api.types.is_integer_dtype(dtype):
        return "BIGINT"
    if pd.api.types.is_float_dtype(dtype):
        return "DOUBLE PRECISION"
    if isinstance(dtype, pd.DatetimeTZDtype):
        return "TIMESTAMPTZ"
    if pd.api.types.is_datetime64_dtype(dtype):
        return "TIMESTAMP"
    if pd.api.types.is_object_dtype(dtype):
        sample = series.dropna()
        if len(sample) and isinstance(sample.iloc[0], (list, tuple, dict, np.ndarray)):
            return "JSONB"
        # Exact numbers (NUMERIC read back, DuckDB DECIMAL) stay exact: TEXT would hold
        # ``str(Decimal)``, with an exponent (``1E+20``).
        if len(sample) and all(isinstance(v, decimal.Decimal) for v in sample.iloc[:100]):
            return "NUMERIC"
    return "TEXT"


def _copy_value(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, np.ndarray):
        return orjson.dumps(value.tolist()).decode()
    if isinstance(value, (list, tuple, dict)):
        return orjson.dumps(value).decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


class PostgresWarehouse:
    """A PostgreSQL database behind the ``Warehouse`` protocol.

    Args:
        dsn: libpq connection string or ``postgresql://`` URL (may hold a password; it is
            never shown).
        source_timeout_s: ``statement_timeout`` of a source read.
    """

    def __init__(self, dsn: str, *, source_timeout_s: float = 300.0) -> None:
        if source_timeout_s <= 0:
            raise ValueError("source_timeout_s must be positive")
        self._source_timeout_ms = max(1, int(source_timeout_s * 1000))
        self._safe_dsn = redact_dsn(dsn)
        self._password = conninfo.conninfo_to_dict(dsn).get("password") or None
        self._lock = threading.RLock()
        try:
            self._conn = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as exc:
            raise WarehouseError(
                f"cannot connect to PostgreSQL ({self._safe_dsn}): {self._scrub(str(exc))}"
            ) from None

    def __repr__(self) -> str:
        return f"PostgresWarehouse(dsn={self._safe_dsn!r})"

    @property
    def dialect(self) -> SqlDialect:
        """``postgres``."""
        return "postgres"

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
            sql = source_read_sql("postgres", table=table, query=query, columns=columns)
        else:
            kind = day_kind(self.source_schema(table=table, query=query), day.column)
            sql = source_day_read_sql(
                "postgres", table=table, query=query, columns=columns, kind=kind, source_day=day
            )
        frame = self._read_only_frame(sql)
        if query is None or columns is None:
            return frame
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise WarehouseError(f"the source has no column(s) {missing}")
        return frame[list(columns)]

    def source_schema(
        self, *, table: str | None = None, query: str | None = None
    ) -> list[tuple[str, str]]:
        """``(column, type)`` of a source, from a zero-row read-only statement."""
        sql = source_schema_sql("postgres", table=table, query=query)
        with self._read_only() as cur:
            self._run(cur, sql)
            return [(c.name, c.type_display) for c in cur.description or ()]

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
            "postgres",
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
        with self._read_only() as cur:
            self._run(cur, sql)
            names = [d.name for d in cur.description or ()]
            return pd.DataFrame.from_records(cur.fetchall(), columns=names)

    @contextmanager
    def _read_only(self) -> Iterator[psycopg.Cursor[Any]]:
        with self._lock, self._conn.cursor() as cur:
            if self._conn.info.transaction_status != TransactionStatus.IDLE:
                raise WarehouseError("a source is read outside of any open transaction")
            cur.execute("BEGIN READ ONLY")
            try:
                # An int from our own config: nothing configured is pasted here.
                cur.execute(f"SET LOCAL statement_timeout = {self._source_timeout_ms}")
                # The query check reads strings the standard way; so must the server.
                cur.execute("SET LOCAL standard_conforming_strings = on")
                yield cur
            finally:
                cur.execute("ROLLBACK")

    def _run(self, cur: psycopg.Cursor[Any], sql: str) -> None:
        # No parameters: psycopg then leaves '%' and '?' of the query text alone.
        try:
            cur.execute(sql)
        except psycopg.Error as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise WarehouseError(f"source read failed: {self._scrub(first_line)}") from None

    def _scrub(self, text: str) -> str:
        if self._password:
            text = text.replace(str(self._password), "***")
        return text

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block in one transaction (nested blocks become savepoints)."""
        with self._lock, self._conn.transaction():
            yield

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement with ``?`` parameters; returns the affected row count or -1."""
        with self._lock, self._conn.cursor() as cur:
            cur.execute(qmark_to_pyformat(sql), tuple(params))
            return cur.rowcount

    def execute_many(self, sql: str, rows: Sequence[Params]) -> None:
        """Run one statement per parameter row, atomically."""
        with self.transaction(), self._conn.cursor() as cur:
            if rows:
                cur.executemany(qmark_to_pyformat(sql), [tuple(r) for r in rows])

    def fetch_all(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Run a query with ``?`` parameters and return every row."""
        with self._lock, self._conn.cursor() as cur:
            cur.execute(qmark_to_pyformat(sql), tuple(params))
            return list(cur.fetchall())

    def read_query(self, sql: str, params: Params = ()) -> pd.DataFrame:
        """Run a query with ``?`` parameters and return a DataFrame."""
        with self._lock, self._conn.cursor() as cur:
            cur.execute(qmark_to_pyformat(sql), tuple(params))
            names = [d.name for d in cur.description or ()]
            return pd.DataFrame.from_records(cur.fetchall(), columns=names)

    def read_table(self, table: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Read the given columns (all when None) of a table."""
        cols = "*" if columns is None else ", ".join(quote_identifier(c) for c in columns)
        return self.read_query(f"SELECT {cols} FROM {quote_table(table)}")  # noqa: S608

    def write_frame(self, table: str, frame: pd.DataFrame, *, mode: WriteMode = "append") -> int:
        """Write a frame with COPY; creates the table (and schema) when missing."""
        if mode not in ("append", "replace"):
            raise ValueError(f"mode must be 'append' or 'replace', not {mode!r}")
        target = quote_table(table)
        columns = [quote_identifier(str(c)) for c in frame.columns]
        parts = split_table(table, max_parts=2)
        with self.transaction(), self._conn.cursor() as cur:
            if len(parts) == 2:
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(parts[0])}")
            if mode == "replace":
                cur.execute(f"DROP TABLE IF EXISTS {target}")
            definition = ", ".join(
                f"{col} {_pg_type(frame[name])}"
                for col, name in zip(columns, frame.columns, strict=True)
            )
            cur.execute(f"CREATE TABLE IF NOT EXISTS {target} ({definition})")
            with cur.copy(f"COPY {target} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in frame.itertuples(index=False, name=None):
                    copy.write_row([_copy_value(v) for v in row])
        return len(frame)

    def table_exists(self, table: str) -> bool:
        """Whether the table or view exists (unqualified names follow ``search_path``)."""
        rows = self.fetch_all("SELECT to_regclass(?) IS NOT NULL", [quote_table(table)])
        return bool(rows[0][0])

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()
