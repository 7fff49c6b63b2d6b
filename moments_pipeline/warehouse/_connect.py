"""``connect_warehouse(url)``: open a warehouse from a URL; the one place that reads URLs.

``duckdb:///relative/file.duckdb``, ``duckdb:////absolute/file.duckdb`` (SQLAlchemy's
convention: the path is what follows ``duckdb:///``), ``duckdb:///:memory:``, and
``postgresql://...`` / ``postgres://...`` URLs, or a libpq ``key=value`` conninfo string.
``redact_url`` is how any of them is shown (a PostgreSQL password never is).
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import conninfo

from moments_pipeline.warehouse._duckdb import DuckDBWarehouse
from moments_pipeline.warehouse._postgres import PostgresWarehouse, redact_dsn
from moments_pipeline.warehouse._protocol import Warehouse, WarehouseError

_DUCKDB_PREFIX = "duckdb:///"


def is_postgres_url(url: str) -> bool:
    """Whether ``url`` is a PostgreSQL URL or a libpq ``key=value`` conninfo string."""
    # A libpq key=value conninfo string (as psycopg's make_conninfo gives) is PostgreSQL too.
    return url.startswith(("postgresql://", "postgres://")) or ("://" not in url and "=" in url)


def redact_url(url: str) -> str:
    """``url`` safe for logs and metadata: a PostgreSQL password is replaced by ``***``."""
    return redact_dsn(url) if is_postgres_url(url) else url


def connect_warehouse(
    url: str, *, read_only: bool = False, source_timeout_s: float = 300.0, lock_wait_s: float = 0.0
) -> Warehouse:
    """Open the warehouse a URL points at.

    Args:
        url: ``duckdb:///path``, ``duckdb:///:memory:`` or ``postgresql://...``.
        read_only: Open so that nothing can be written: DuckDB opens an existing file
            read-only (never creating one), PostgreSQL sessions default to read-only
            transactions.
        source_timeout_s: Statement timeout of a source read (PostgreSQL; DuckDB has none).
        lock_wait_s: How long to wait for a DuckDB file another process holds (0: fail now).

    Returns:
        An open warehouse; the caller closes it.

    Raises:
        ValueError: The scheme is not supported (the message never repeats the URL, which
            may hold a password).
        WarehouseError: A read-only DuckDB file does not exist, or the URL cannot be parsed.
    """
    if url.startswith(_DUCKDB_PREFIX):
        path = url[len(_DUCKDB_PREFIX) :]
        if not path:
            raise ValueError("duckdb URL needs a path: duckdb:///file.duckdb or duckdb:///:memory:")
        if read_only:
            # DuckDB's read_only would refuse these too, less clearly.
            if path == ":memory:" or not Path(path).is_file():
                raise WarehouseError(f"DuckDB file {path} does not exist")
            return DuckDBWarehouse(path, read_only=True, lock_wait_s=lock_wait_s)
        return DuckDBWarehouse(path, lock_wait_s=lock_wait_s)
    if is_postgres_url(url):
        if read_only:
            try:
                options = conninfo.conninfo_to_dict(url).get("options") or ""
                forced = f"{options} -c default_transaction_read_only=on".strip()
                url = conninfo.make_conninfo(url, options=forced)
            except psycopg.Error:
                # libpq's parse error may quote the URL, password included: not repeated.
                raise WarehouseError("the PostgreSQL URL cannot be parsed") from None
        return PostgresWarehouse(url, source_timeout_s=source_timeout_s)
    scheme = url.split(":", 1)[0] if ":" in url else "<none>"
    raise ValueError(
        f"unsupported warehouse URL scheme {scheme!r}: use duckdb:/// or postgresql://"
    )
