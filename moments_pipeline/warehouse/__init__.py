"""Warehouse access: the reader/writer protocol and its DuckDB and PostgreSQL implementations.

Table and column names that come from configuration are validated and quoted here; no SQL is
built from unchecked text. SQL given to ``execute``/``fetch_all``/``read_query`` uses ``?``
placeholders on every backend; ``?`` must not appear inside SQL string literals.
"""

from moments_pipeline.warehouse._connect import connect_warehouse
from moments_pipeline.warehouse._duckdb import DuckDBWarehouse
from moments_pipeline.warehouse._postgres import PostgresWarehouse, redact_dsn
from moments_pipeline.warehouse._protocol import Params, Warehouse, WarehouseError, WriteMode
from moments_pipeline.warehouse._sql import (
    UnsafeIdentifierError,
    UnsafeQueryError,
    check_identifier,
    check_select_query,
    quote_identifier,
    quote_table,
)

__all__ = [
    "DuckDBWarehouse",
    "Params",
    "PostgresWarehouse",
    "UnsafeIdentifierError",
    "UnsafeQueryError",
    "Warehouse",
    "WarehouseError",
    "WriteMode",
    "check_identifier",
    "check_select_query",
    "connect_warehouse",
    "quote_identifier",
    "quote_table",
    "redact_dsn",
]
