"""SQL text helpers: identifier validation and quoting, placeholder translation, DSN redaction.

Only names matching a plain identifier pattern are accepted; there is deliberately no escaping
path for odd names, so a hostile config value is refused rather than quoted.
"""

from __future__ import annotations

import re

import duckdb

_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class UnsafeIdentifierError(ValueError):
    """A table or column name is not a plain SQL identifier."""


def check_identifier(name: str) -> str:
    """Return ``name`` if it is a plain identifier, else raise.

    Args:
        name: A column, schema or table name.

    Returns:
        The unchanged name.

    Raises:
        UnsafeIdentifierError: ``name`` is not letters, digits and underscores (max 63).
    """
    if not isinstance(name, str) or not _IDENTIFIER_RE.fullmatch(name):
        raise UnsafeIdentifierError(f"refused SQL identifier {name!r}: not a plain identifier")
    return name


class UnsafeQueryError(ValueError):
    """A configured query is not exactly one SELECT statement."""


def check_select_query(sql: str) -> str:
    """Return ``sql`` if it is exactly one SELECT (or WITH ... SELECT) statement, else raise.

    An audience query runs with the warehouse credentials that also own the ledger, so a
    config must not be able to slip a DELETE or a second statement in. DuckDB's parser (a
    PostgreSQL-dialect parser) decides; a query it cannot parse is refused too: wrap unusual
    syntax in a view and read it with ``table:``.

    Args:
        sql: The query text from a config.

    Returns:
        The unchanged text.

    Raises:
        UnsafeQueryError: Not parseable, not a single statement, or not a SELECT.
    """
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UnsafeQueryError(f"query could not be parsed: {first_line}") from None
    if len(statements) != 1:
        raise UnsafeQueryError(f"query must be one statement, found {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise UnsafeQueryError(f"query must be a SELECT, found {kind.name}")
    return sql


def quote_identifier(name: str) -> str:
    """Validate and double-quote one identifier (``"name"``)."""
    return f'"{check_identifier(name)}"'


def split_table(table: str, *, max_parts: int = 3) -> list[str]:
    """Split and validate ``[catalog.]schema.table`` into its parts."""
    if not isinstance(table, str):
        raise UnsafeIdentifierError(f"refused table name {table!r}")
    parts = table.split(".")
    if not 1 <= len(parts) <= max_parts:
        raise UnsafeIdentifierError(f"refused table name {table!r}: too many dotted parts")
    for part in parts:
        check_identifier(part)
    return parts


def quote_table(table: str) -> str:
    """Validate and quote a possibly schema-qualified table name (``"schema"."table"``)."""
    return ".".join(f'"{p}"' for p in split_table(table))


def qmark_to_pyformat(sql: str) -> str:
    """Translate ``?`` placeholders to psycopg's ``%s``, escaping literal ``%``.

    Every ``?`` is a placeholder: ``?`` must not appear inside string literals or as a
    PostgreSQL operator in SQL given to the warehouse.
    """
    return sql.replace("%", "%%").replace("?", "%s")
