"""The per-day pieces both warehouses share: a column's day kind and the per-day summary rows.

``DuckDBWarehouse`` and ``PostgresWarehouse`` differ in how they run a read-only statement, not
in what a day is: the kind of a date column comes from the source's zero-row schema, and the
summary a sensor compares tick after tick (``Warehouse.source_day_summary``) is read the same
way from the frame either returns. One home for both, so the two backends cannot drift.
No I/O of its own: the caller passes its schema and its read-only frame reader.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import pandas as pd

from moments_pipeline.warehouse._protocol import WarehouseError
from moments_pipeline.warehouse._query_check import SqlDialect
from moments_pipeline.warehouse._source_sql import DateKind, date_kind, source_day_summary_sql

__all__ = ["as_date", "day_kind", "summarize_days"]

SchemaOf = Callable[..., list[tuple[str, str]]]
ReadFrame = Callable[[str], pd.DataFrame]


def as_date(value: Any) -> date:
    """A day as ``date`` (pandas may hand a DATE column as ``Timestamp`` or ``datetime64``)."""
    if isinstance(value, pd.Timestamp | datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return pd.Timestamp(value).date()


def day_kind(schema: list[tuple[str, str]], column: str) -> DateKind:
    """The day kind of ``column`` in a source's ``(column, type)`` schema."""
    types = dict(schema)
    if column not in types:
        raise WarehouseError(f"the source has no column {column!r}")
    kind = date_kind(types[column])
    if kind is None:
        raise WarehouseError(f"column {column!r} is {types[column]}, not a date or timestamp")
    return kind


def summarize_days(
    dialect: SqlDialect,
    schema_of: SchemaOf,
    read_frame: ReadFrame,
    *,
    table: str | None,
    query: str | None,
    day_column: str | None,
    watermark_column: str,
    timezone: str,
    start: date | None,
) -> list[tuple[date | None, int, str | None]]:
    """Per-day row count and max watermark (see ``Warehouse.source_day_summary``)."""
    kind = None
    if day_column is not None:
        kind = day_kind(schema_of(table=table, query=query), day_column)
    sql = source_day_summary_sql(
        dialect,
        table=table,
        query=query,
        day_column=day_column,
        kind=kind,
        watermark_column=watermark_column,
        timezone=timezone,
        start=start,
    )
    return [
        (
            None if d is None or d != d else as_date(d),
            int(n),
            None if w is None or w != w else str(w),
        )
        for d, n, w in read_frame(sql).itertuples(index=False, name=None)
    ]
