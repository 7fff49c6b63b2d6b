"""The ``Warehouse`` protocol: the small reader/writer surface every backend provides.

Small on purpose so Snowflake or BigQuery can be added later behind Dagster's own resources.
SQL passed to ``execute``/``fetch_all`` uses ``?`` placeholders on every backend.

The audience source is read through ``read_source``/``source_schema`` only: they check a query
with ``check_select_query`` in the backend's ``dialect`` and run it where it cannot write or
leave the database (a read-only transaction on a connection without file, network or extension
access), whatever the checker let through. Nothing else runs configured SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import date
from typing import Any, Literal, Protocol, runtime_checkable

import pandas as pd

from moments_pipeline.warehouse._query_check import SqlDialect
from moments_pipeline.warehouse._source_sql import SourceDay

WriteMode = Literal["append", "replace"]
Params = Sequence[Any]


class WarehouseError(RuntimeError):
    """A warehouse operation failed (message never carries credentials)."""


@runtime_checkable
class Warehouse(Protocol):
    """Reader and writer of tables; thread safe within one process."""

    @property
    def dialect(self) -> SqlDialect:
        """The SQL dialect of the engine (``duckdb`` or ``postgres``), for query checks."""
        ...

    def read_source(
        self,
        *,
        table: str | None = None,
        query: str | None = None,
        columns: Sequence[str] | None = None,
        day: SourceDay | None = None,
    ) -> pd.DataFrame:
        """Read an audience source: ``table`` (only ``columns``, all when None) or ``query``.

        With ``day``, only the rows of that day of ``day.column`` (a DATE or TIMESTAMP[TZ]
        column of the source; any other type is a ``WarehouseError``) are read, filtered in
        the warehouse.

        A query is checked (one read-only SELECT, ``UnsafeQueryError`` otherwise) and, like the
        table read, runs in a read-only transaction without file or network access, rolled
        back afterwards. Of a query's result only ``columns`` are kept (all when None).

        Raises:
            UnsafeQueryError: The query is refused (nothing ran).
            WarehouseError: The engine refused or failed the read (message names no secret).
        """
        ...

    def source_schema(
        self, *, table: str | None = None, query: str | None = None
    ) -> list[tuple[str, str]]:
        """``(column, type)`` of a source without reading a row (same checks as ``read_source``)."""
        ...

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
        """``(day, rows, max watermark as text)`` per day from ``start`` on, in one aggregate.

        Same checks and read-only path as ``read_source``; rows without a day are left out.
        Without ``day_column``, one row for the whole source (its day None).
        """
        ...

    def read_table(self, table: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Read ``columns`` (all when None) of ``[schema.]table``; names are validated."""
        ...

    def read_query(self, sql: str, params: Params = ()) -> pd.DataFrame:
        """Run a query (``?`` placeholders) and return its result as a DataFrame."""
        ...

    def write_frame(self, table: str, frame: pd.DataFrame, *, mode: WriteMode = "append") -> int:
        """Bulk-write ``frame`` into ``table`` (created when missing); returns rows written."""
        ...

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement (``?`` placeholders); returns the affected row count or -1."""
        ...

    def execute_many(self, sql: str, rows: Sequence[Params]) -> None:
        """Run one statement once per parameter row, in one transaction."""
        ...

    def fetch_all(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Run a query (``?`` placeholders) and return all rows as tuples."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """Context manager: statements inside commit together or roll back on error."""
        ...

    def table_exists(self, table: str) -> bool:
        """Whether ``[schema.]table`` exists."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...
