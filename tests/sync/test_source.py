"""``source_problems`` finds every wrong column before a row is read; ``read_audience_source``
reads only the columns an audience uses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from moments_pipeline.config import AudienceConfig, parse_audience
from moments_pipeline.sync import read_audience_source, source_problems
from moments_pipeline.warehouse import DuckDBWarehouse, Warehouse


@pytest.fixture
def wh(tmp_path: Path) -> Iterator[Warehouse]:
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    warehouse.write_frame(
        "people",
        pd.DataFrame(
            {
                "rid": ["r1", "r2"],
                "email": ["a@example.com", "b@example.com"],
                "phone": ["+41 79 302 67 27", None],
                "first_name": ["Ann", "Bo"],
            }
        ),
    )
    warehouse.execute('ALTER TABLE people ADD COLUMN "first name" VARCHAR')
    try:
        yield warehouse
    finally:
        warehouse.close()


def _audience(source: dict[str, Any], **identity: Any) -> AudienceConfig:
    return parse_audience(
        {
            "name": "a",
            "source": source,
            "identity": {"identify_by": {"column": "email", "type": "EMAIL"}, **identity},
            "person": {"attributes": {"firstName": "first_name"}},
            "flow": {"campaign_id": 1},
        }
    )


def test_a_good_table_source_has_no_problems_and_reads_only_used_columns(wh: Warehouse) -> None:
    audience = _audience({"table": "people", "row_id_column": "rid"}, emails=["email"])
    assert source_problems(wh, audience) == []
    frame = read_audience_source(wh, audience)
    assert list(frame.columns) == ["rid", "email", "first_name"]
    assert len(frame) == 2


def test_every_missing_column_is_named_by_field_with_a_suggestion(wh: Warehouse) -> None:
    audience = _audience(
        {"table": "people", "row_id_column": "record_id"},
        emails=["emial"],
        phones=["phone", "mobile_number"],
        default_region="CH",
    )
    assert source_problems(wh, audience) == [
        "source.row_id_column: column 'record_id' not in source (the source has: rid, email, "
        "phone, first_name, first name)",
        "identity.emails[0]: column 'emial' not in source (did you mean 'email'?)",
        "identity.phones[1]: column 'mobile_number' not in source (the source has: rid, email, "
        "phone, first_name, first name)",
    ]


def test_query_sources_are_described_without_reading(wh: Warehouse) -> None:
    audience = _audience({"query": "SELECT rid, email AS mail FROM people"})
    assert source_problems(wh, audience) == [
        "identity.identify_by.column: column 'email' not in source (did you mean 'mail'?)",
        "person.attributes.firstName: column 'first_name' not in source (the source has: rid, "
        "mail)",
    ]
    good = _audience({"query": 'SELECT rid, email, first_name, "first name" FROM people'})
    assert list(read_audience_source(wh, good).columns) == ["email", "first_name"]


def test_a_missing_table_or_refused_query_is_one_problem(wh: Warehouse) -> None:
    [problem] = source_problems(wh, _audience({"table": "nobody"}))
    assert problem.startswith("source.table: source read failed: Catalog Error")
    hostile = _audience({"query": "SELECT email, first_name FROM people"})
    # A query refused at run time (here by the exact dialect) is reported, not raised.
    object.__setattr__(hostile.source, "query", "SELECT getenv('HOME') AS email")
    assert source_problems(wh, hostile) == [
        "source.query: function getenv is refused: it reads the environment or the server's "
        "settings"
    ]
