"""SQL text helpers: identifier validation and quoting, placeholder translation.

Query checking lives in ``_query_check`` (``check_select_query``).

Only names matching a plain identifier pattern are accepted; there is deliberately no escaping
path for odd names, so a hostile config value is refused rather than quoted.
"""

from __future__ import annotations

import re

_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


#: Tables the pipeline itself writes: the sync ledger (default prefix) and each audience's
#: snapshot, participants, quarantine and dropped-values tables. An audience's source may not
#: read them: they hold other audiences' people, and reading them would put those people in
#: this audience's flow. ``dagster/_specs.audience_tables`` and the ledger's table names are
#: tested against this rule.
PIPELINE_TABLE_PREFIXES: tuple[str, ...] = ("moments_sync_",)
PIPELINE_TABLE_SUFFIXES: tuple[str, ...] = (
    "__source_snapshot",
    "__participants",
    "__quarantine",
    "__dropped",
)


def pipeline_table_refusal(table: str) -> str | None:
    """Why ``table`` (any qualification) may not be an audience's source, or None."""
    name = table.rsplit(".", 1)[-1].lower()
    if name.startswith(PIPELINE_TABLE_PREFIXES) or name.endswith(PIPELINE_TABLE_SUFFIXES):
        return (
            f"table {table!r} is refused: it is one of the pipeline's own tables (ledger or "
            "an audience's prepared tables), not a source"
        )
    return None


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
