"""SQL text of the source path, shared by both backends (the reading itself is per backend).

A ``table:`` source is read by naming only the wanted columns (quoted, validated), so columns the
audience never uses (odd names included) play no part. A ``query:`` source runs as written after
``check_select_query`` in the backend's own dialect; its schema is asked by wrapping it in a
zero-row outer SELECT, so no row is read to learn the columns.

A partitioned audience reads one day (``SourceDay``): the day's bounds are typed literals built
from ``date`` objects for the column's type (``date_kind``), never from configured text; the
sensor's fingerprints are one aggregate over the source (``source_day_summary_sql``).
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from moments_pipeline.warehouse._query_check import SqlDialect, check_select_query
from moments_pipeline.warehouse._sql import quote_identifier, quote_table


def _one_of(table: str | None, query: str | None) -> None:
    if (table is None) == (query is None):
        raise ValueError("give exactly one of table= or query=")


def _strip_terminator(query: str) -> str:
    # A trailing ';' would end the statement inside the wrapping parentheses.
    text = query.rstrip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def source_read_sql(
    dialect: SqlDialect,
    *,
    table: str | None,
    query: str | None,
    columns: Sequence[str] | None,
) -> str:
    """The statement that reads a source: the checked query, or the table's wanted columns."""
    _one_of(table, query)
    if query is not None:
        return check_select_query(query, dialect)
    cols = "*" if columns is None else ", ".join(quote_identifier(c) for c in columns)
    return f"SELECT {cols} FROM {quote_table(table or '')}"  # noqa: S608 - names are validated


def source_schema_sql(dialect: SqlDialect, *, table: str | None, query: str | None) -> str:
    """A zero-row statement with the source's columns (names and types, no rows)."""
    _one_of(table, query)
    if query is not None:
        checked = _strip_terminator(check_select_query(query, dialect))
        # The newline keeps a trailing '--' comment from swallowing the closing parenthesis.
        return f"SELECT * FROM (\n{checked}\n) AS moments_source LIMIT 0"  # noqa: S608
    return f"SELECT * FROM {quote_table(table or '')} LIMIT 0"  # noqa: S608 - validated name


# -- one day of a partitioned source, and the per-day fingerprints of a sensor -----------------

DateKind = Literal["date", "timestamp", "timestamptz"]

#: An IANA time zone name: the only text of a config rendered into these statements (checked
#: here again, whatever the config layer did, so no quote or space can reach the SQL).
_TIMEZONE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$")


@dataclass(frozen=True, slots=True)
class SourceDay:
    """The rows of one day: ``column`` in ``[day 00:00, day+1 00:00)`` of ``timezone``.

    Rendered as typed literals made from ``datetime`` objects (never from configured text),
    matching the column's type: DATE compares with dates, TIMESTAMP with the wall time of the
    zone, TIMESTAMPTZ with the instants of the zone's midnights.
    """

    column: str
    day: date
    timezone: str = "UTC"


def date_kind(type_name: str) -> DateKind | None:
    """How a column type (as DuckDB or PostgreSQL names it) holds a day; None if it does not."""
    name = type_name.strip().lower()
    if name == "date":
        return "date"
    if name.startswith("timestamp"):
        with_zone = "with time zone" in name or name.startswith("timestamptz")
        return "timestamptz" if with_zone else "timestamp"
    return None


def _zone(timezone: str) -> zoneinfo.ZoneInfo:
    if not _TIMEZONE_RE.fullmatch(timezone):
        raise ValueError(f"{timezone!r} is not an IANA time zone name")
    return zoneinfo.ZoneInfo(timezone)


def _bound(kind: DateKind, day: date, timezone: str) -> str:
    """The literal of ``day``'s midnight for a column of ``kind`` (from a date, not text)."""
    if kind == "date":
        return f"DATE '{day.isoformat()}'"
    if kind == "timestamp":
        return f"TIMESTAMP '{day.isoformat()} 00:00:00'"
    midnight = datetime.combine(day, time(0), tzinfo=_zone(timezone)).astimezone(UTC)
    return f"TIMESTAMPTZ '{midnight.strftime('%Y-%m-%d %H:%M:%S')}+00:00'"


def day_condition(kind: DateKind, source_day: SourceDay) -> str:
    """``col >= <midnight> AND col < <next midnight>`` for one day (validated name)."""
    col = quote_identifier(source_day.column)
    lower = _bound(kind, source_day.day, source_day.timezone)
    upper = _bound(kind, source_day.day + timedelta(days=1), source_day.timezone)
    return f"{col} >= {lower} AND {col} < {upper}"


def source_day_read_sql(
    dialect: SqlDialect,
    *,
    table: str | None,
    query: str | None,
    columns: Sequence[str] | None,
    kind: DateKind,
    source_day: SourceDay,
) -> str:
    """The read of one day of a source: the table's columns, or the checked query, filtered."""
    _one_of(table, query)
    condition = day_condition(kind, source_day)
    if query is not None:
        checked = _strip_terminator(check_select_query(query, dialect))
        return f"SELECT * FROM (\n{checked}\n) AS moments_source WHERE {condition}"  # noqa: S608
    cols = "*" if columns is None else ", ".join(quote_identifier(c) for c in columns)
    return f"SELECT {cols} FROM {quote_table(table or '')} WHERE {condition}"  # noqa: S608


def _day_expression(dialect: SqlDialect, kind: DateKind, column: str, timezone: str) -> str:
    col = quote_identifier(column)
    if kind != "timestamptz":
        return f"CAST({col} AS DATE)"
    _zone(timezone)  # validated: the name is rendered as a literal
    if dialect == "postgres":
        return f"CAST(({col} AT TIME ZONE '{timezone}') AS DATE)"
    return f"CAST(timezone('{timezone}', {col}) AS DATE)"


def source_day_summary_sql(
    dialect: SqlDialect,
    *,
    table: str | None,
    query: str | None,
    day_column: str | None,
    kind: DateKind | None,
    watermark_column: str,
    timezone: str,
    start: date | None,
) -> str:
    """One aggregate over the source: ``(day, row count, max watermark as text)`` per day.

    Days before ``start`` and rows without a day are left out (they are in no partition).
    Without ``day_column`` the whole source is one group, whose day is NULL.
    """
    _one_of(table, query)
    watermark = quote_identifier(watermark_column)
    if query is not None:
        base = _strip_terminator(check_select_query(query, dialect))
    else:
        wanted = [c for c in (day_column, watermark_column) if c is not None]
        cols = ", ".join(quote_identifier(c) for c in dict.fromkeys(wanted))
        base = f"SELECT {cols} FROM {quote_table(table or '')}"  # noqa: S608 - validated names
    counts = f"count(*) AS moments_rows, CAST(max({watermark}) AS TEXT) AS moments_watermark"
    if day_column is None or kind is None:
        return f"SELECT NULL AS moments_day, {counts} FROM (\n{base}\n) AS moments_source"  # noqa: S608
    day = _day_expression(dialect, kind, day_column, timezone)
    lower = (
        "TRUE"
        if start is None
        else f"{quote_identifier(day_column)} >= {_bound(kind, start, timezone)}"
    )
    return (
        f"SELECT {day} AS moments_day, {counts} "  # noqa: S608
        f"FROM (\n{base}\n) AS moments_source WHERE {lower} GROUP BY 1 ORDER BY 1"
    )
