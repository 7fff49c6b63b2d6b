"""The ``Warehouse`` protocol: the small reader/writer surface every backend provides.

Small on purpose so Snowflake or BigQuery can be added later behind Dagster's own resources.
SQL passed to ``execute``/``fetch_all`` uses ``?`` placeholders on every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol, runtime_checkable

import pandas as pd

WriteMode = Literal["append", "replace"]
Params = Sequence[Any]


class WarehouseError(RuntimeError):
    """A warehouse operation failed (message never carries credentials)."""


@runtime_checkable
class Warehouse(Protocol):
    """Reader and writer of tables; thread safe within one process."""

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
