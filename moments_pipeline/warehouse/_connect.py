"""``connect_warehouse(url)``: open a warehouse from a URL.

``duckdb:///relative/file.duckdb``, ``duckdb:////absolute/file.duckdb`` (SQLAlchemy's
convention: the path is what follows ``duckdb:///``), ``duckdb:///:memory:``, and
``postgresql://...`` / ``postgres://...`` URLs, or a libpq ``key=value`` conninfo string.
"""

from __future__ import annotations

from moments_pipeline.warehouse._duckdb import DuckDBWarehouse
from moments_pipeline.warehouse._postgres import PostgresWarehouse
from moments_pipeline.warehouse._protocol import Warehouse

_DUCKDB_PREFIX = "duckdb:///"


def connect_warehouse(url: str, *, source_timeout_s: float = 300.0) -> Warehouse:
    """Open the warehouse a URL points at.

    Args:
        url: ``duckdb:///path``, ``duckdb:///:memory:`` or ``postgresql://...``.
        source_timeout_s: Statement timeout of a source read (PostgreSQL; DuckDB has none).

    Returns:
        An open warehouse; the caller closes it.

    Raises:
        ValueError: The scheme is not supported (the message never repeats the URL, which
            may hold a password).
    """
    if url.startswith(_DUCKDB_PREFIX):
        path = url[len(_DUCKDB_PREFIX) :]
        if not path:
            raise ValueError("duckdb URL needs a path: duckdb:///file.duckdb or duckdb:///:memory:")
        return DuckDBWarehouse(path)
    if url.startswith(("postgresql://", "postgres://")) or ("://" not in url and "=" in url):
        # A libpq key=value conninfo string (as psycopg's make_conninfo gives) is PostgreSQL too.
        return PostgresWarehouse(url, source_timeout_s=source_timeout_s)
    scheme = url.split(":", 1)[0] if ":" in url else "<none>"
    raise ValueError(
        f"unsupported warehouse URL scheme {scheme!r}: use duckdb:/// or postgresql://"
    )
