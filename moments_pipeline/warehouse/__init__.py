"""Warehouse access: the reader/writer protocol and its DuckDB and PostgreSQL implementations.

Table and column names that come from configuration are validated and quoted here; no SQL is
built from unchecked text. SQL given to ``execute``/``fetch_all``/``read_query`` uses ``?``
placeholders on every backend; ``?`` must not appear inside SQL string literals.

Configured source SQL goes through ``read_source``/``source_schema`` only: checked by
``check_select_query`` (sqlglot, per dialect) and run read-only without file or network access.
"""

from moments_pipeline.warehouse._connect import connect_warehouse, is_postgres_url, redact_url
from moments_pipeline.warehouse._duckdb import DuckDBWarehouse
from moments_pipeline.warehouse._postgres import PostgresWarehouse, redact_dsn
from moments_pipeline.warehouse._protocol import Params, Warehouse, WarehouseError, WriteMode
from moments_pipeline.warehouse._query_check import (
    DIALECTS,
    SAFE_TABLE_FUNCTIONS,
    SqlDialect,
    UnsafeQueryError,
    check_select_query,
)
from moments_pipeline.warehouse._source_sql import DateKind, SourceDay, date_kind
from moments_pipeline.warehouse._sql import (
    UnsafeIdentifierError,
    check_identifier,
    pipeline_table_refusal,
    quote_identifier,
    quote_table,
)

__all__ = [
    "DIALECTS",
    "SAFE_TABLE_FUNCTIONS",
    "DateKind",
    "DuckDBWarehouse",
    "Params",
    "PostgresWarehouse",
    "SourceDay",
    "SqlDialect",
    "UnsafeIdentifierError",
    "UnsafeQueryError",
    "Warehouse",
    "WarehouseError",
    "WriteMode",
    "check_identifier",
    "check_select_query",
    "connect_warehouse",
    "date_kind",
    "is_postgres_url",
    "pipeline_table_refusal",
    "quote_identifier",
    "quote_table",
    "redact_dsn",
    "redact_url",
]
