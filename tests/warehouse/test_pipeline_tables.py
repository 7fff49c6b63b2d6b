"""An audience's source may not read the pipeline's own tables (other audiences' people).

The rule lives in ``warehouse._sql.pipeline_table_refusal``; these tests bind it to the names
the pipeline really writes, so a new table or a renamed one cannot slip past it.
"""

from __future__ import annotations

import pytest

from moments_pipeline.config import ConfigError, parse_audience
from moments_pipeline.dagster._specs import audience_tables
from moments_pipeline.sync import SqlLedgerStore
from moments_pipeline.warehouse import (
    DuckDBWarehouse,
    UnsafeQueryError,
    check_select_query,
    pipeline_table_refusal,
)


def _pipeline_tables() -> list[str]:
    warehouse = DuckDBWarehouse(":memory:")
    try:
        ledger = list(SqlLedgerStore(warehouse).table_names().values())
    finally:
        warehouse.close()
    tables = audience_tables("vip")
    audience = [getattr(tables, f) for f in tables.__dataclass_fields__]
    return ledger + audience


@pytest.mark.parametrize("table", _pipeline_tables())
def test_every_table_the_pipeline_writes_is_refused_as_a_source(table: str) -> None:
    assert pipeline_table_refusal(table)
    assert pipeline_table_refusal(f"main.{table}")
    with pytest.raises(UnsafeQueryError, match="pipeline's own tables"):
        check_select_query(f"SELECT * FROM main.{table}")
    with pytest.raises(UnsafeQueryError, match="pipeline's own tables"):
        check_select_query(f"SELECT c.* FROM customers c WHERE c.email IN (SELECT 1 FROM {table})")


def test_a_table_source_naming_a_pipeline_table_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"source\.table: .*pipeline's own tables"):
        parse_audience(
            {
                "name": "thief",
                "source": {"table": "other__participants"},
                "identity": {"identify_by": {"column": "email", "type": "EMAIL"}},
                "flow": {"campaign_id": 1},
            }
        )


@pytest.mark.parametrize("table", ["customers", "stg__orders", "moments_campaigns", "quarantined"])
def test_ordinary_tables_are_not_refused(table: str) -> None:
    assert pipeline_table_refusal(table) is None
    assert check_select_query(f"SELECT * FROM {table}")
