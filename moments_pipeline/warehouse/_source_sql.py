"""SQL text of the source path, shared by both backends (the reading itself is per backend).

A ``table:`` source is read by naming only the wanted columns (quoted, validated), so columns the
audience never uses (odd names included) play no part. A ``query:`` source runs as written after
``check_select_query`` in the backend's own dialect; its schema is asked by wrapping it in a
zero-row outer SELECT, so no row is read to learn the columns.
"""

from __future__ import annotations

from collections.abc import Sequence

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
