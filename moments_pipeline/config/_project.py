"""Project conventions shared by the Dagster definitions and the command line.

Where audiences and the demo warehouse live by default, which ``source.connection`` means the
ledger's own warehouse, and which environment variable holds another connection's URL. Written
once here so that ``dagster dev``, ``make demo`` and ``moments-pipeline validate`` cannot
disagree. No I/O.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "DEFAULT_AUDIENCES_DIR",
    "DEFAULT_WAREHOUSE_URL",
    "DEMO_WAREHOUSE",
    "LEDGER_CONNECTION",
    "REPO_ROOT",
    "source_url_env_var",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_AUDIENCES_DIR = REPO_ROOT / "audiences"
DEMO_WAREHOUSE = REPO_ROOT / ".demo" / "warehouse.duckdb"
DEFAULT_WAREHOUSE_URL = f"duckdb:///{DEMO_WAREHOUSE}"
#: The ``source.connection`` that means the ledger's own warehouse.
LEDGER_CONNECTION = "warehouse"


def source_url_env_var(connection: str) -> str:
    """The environment variable holding a source connection's URL: ``MOMENTS_SOURCE_<NAME>_URL``."""
    return f"MOMENTS_SOURCE_{connection.upper()}_URL"
