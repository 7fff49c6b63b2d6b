"""Daily partitions: the YAML block, the day read in the warehouse, per-partition tables.

Run on DuckDB and on the PostgreSQL fixture: each partition is exactly the rows of its day
(DATE, TIMESTAMP and TIMESTAMPTZ columns, a non-UTC zone, table and query sources), and a
partition's write replaces only its own rows, even when its column types differ.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from moments_pipeline.config import PARTITION_COLUMN, AudienceConfig, ConfigError, load_audience
from moments_pipeline.dagster._partitions import (
    range_metadata,
    read_partition,
    stored_partitions,
    write_partition,
)
from moments_pipeline.sync import read_audience_source, source_problems
from moments_pipeline.warehouse import SourceDay, Warehouse, connect_warehouse

YAML = """\
name: daily
source:
  table: signups
  row_id_column: id
identity:
  identify_by: {column: email, type: EMAIL}
flow: {campaign_id: 1}
partition:
  date_column: %s
  start_date: %s
  timezone: %s
"""


def load(
    tmp_path: Path, column: str = "signed_up_at", start: str = "2026-11-01", tz: str = "UTC"
) -> AudienceConfig:
    path = tmp_path / "daily.yaml"
    path.write_text(YAML % (column, start, tz))
    return load_audience(path)


def problems(tmp_path: Path, **kwargs: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, **kwargs)
    return str(info.value).splitlines()


def test_yaml_partition_block(tmp_path: Path) -> None:
    audience = load(tmp_path, tz="Europe/Zurich")
    assert audience.partition is not None
    assert audience.partition.start_date == date(2026, 11, 1)
    assert audience.partition.timezone == "Europe/Zurich"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"tz": "Mars/Olympus"}, "daily.yaml: line 11: partition.timezone: unknown time zone"),
        ({"tz": "'UTC; DROP'"}, "line 11: partition.timezone: 'UTC; DROP' is not an IANA"),
        ({"start": "2026-13-01"}, "line 10: partition.start_date"),
        ({"column": "signed up"}, "line 9: partition.date_column"),
    ],
)
def test_yaml_partition_mistakes_name_file_line_field(
    tmp_path: Path, kwargs: dict[str, str], expected: str
) -> None:
    found = problems(tmp_path, **kwargs)
    assert any(expected in p for p in found), found


def test_the_partition_column_name_is_reserved(tmp_path: Path) -> None:
    path = tmp_path / "daily.yaml"
    text = (YAML % ("signed_up_at", "2026-11-01", "UTC")).replace(
        "flow:", f"variables: {{day: {PARTITION_COLUMN}}}\nflow:"
    )
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_audience(path)
    assert f"{PARTITION_COLUMN!r} is reserved" in str(info.value)


def frame() -> pd.DataFrame:
    # Around midnight in UTC and in Zurich (UTC+1 in November).
    instants = [
        "2026-11-01 00:00:00",
        "2026-11-01 22:59:59",
        "2026-11-01 23:00:00",
        "2026-11-01 23:59:59",
        "2026-11-02 00:00:00",
        "2026-11-02 12:00:00",
    ]
    stamps = pd.to_datetime(instants)
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(len(instants))],
            "email": [f"p{i}@example.org" for i in range(len(instants))],
            "signed_up_at": stamps,
            "signed_up_tz": stamps.tz_localize("UTC"),
            "signed_up_on": stamps.date,
        }
    )


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    else:
        url = request.getfixturevalue("postgres_dsn")
    wh = connect_warehouse(url)
    wh.write_frame("signups", frame(), mode="replace")
    if wh.dialect == "postgres":  # pandas dates are written as text: make the column a DATE
        wh.execute(
            "ALTER TABLE signups ALTER COLUMN signed_up_on TYPE DATE USING signed_up_on::date"
        )
    try:
        yield wh
    finally:
        wh.close()


def ids(
    wh: Warehouse, column: str, day: str, tz: str = "UTC", query: str | None = None
) -> list[str]:
    out = wh.read_source(
        table=None if query else "signups",
        query=query,
        columns=["id"],
        day=SourceDay(column, date.fromisoformat(day), tz),
    )
    return sorted(out["id"].astype(str))


@pytest.mark.parametrize("column", ["signed_up_at", "signed_up_tz", "signed_up_on"])
def test_a_day_is_its_rows_in_utc(warehouse: Warehouse, column: str) -> None:
    assert ids(warehouse, column, "2026-11-01") == ["r0", "r1", "r2", "r3"]
    assert ids(warehouse, column, "2026-11-02") == ["r4", "r5"]
    assert ids(warehouse, column, "2026-10-31") == []


def test_a_day_in_another_zone(warehouse: Warehouse) -> None:
    # Zurich's 1 November ends at 23:00 UTC: r2 and r3 are 2 November there.
    assert ids(warehouse, "signed_up_tz", "2026-11-01", "Europe/Zurich") == ["r0", "r1"]
    assert ids(warehouse, "signed_up_tz", "2026-11-02", "Europe/Zurich") == ["r2", "r3", "r4", "r5"]
    # A TIMESTAMP without zone is wall time of the zone: its midnight is the date's.
    assert ids(warehouse, "signed_up_at", "2026-11-01", "Europe/Zurich") == ["r0", "r1", "r2", "r3"]


def test_a_query_source_is_filtered_outside_the_query(warehouse: Warehouse) -> None:
    query = "SELECT id, email, signed_up_at FROM signups WHERE email LIKE 'p%'"
    assert ids(warehouse, "signed_up_at", "2026-11-02", query=query) == ["r4", "r5"]


def test_read_audience_source_reads_the_day_with_its_date_column(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    audience = load(tmp_path)
    assert source_problems(warehouse, audience) == []
    rows = read_audience_source(warehouse, audience, "2026-11-02")
    assert list(rows.columns) == ["id", "email", "signed_up_at"]
    assert sorted(rows["id"]) == ["r4", "r5"]
    with pytest.raises(ValueError, match="is not a day"):
        read_audience_source(warehouse, audience, "yesterday")


def test_a_text_date_column_is_a_source_problem(warehouse: Warehouse, tmp_path: Path) -> None:
    found = source_problems(warehouse, load(tmp_path, column="email"))
    assert len(found) == 1 and found[0].startswith("partition.date_column: column 'email' is ")
    missing = source_problems(warehouse, load(tmp_path, column="signed_up"))
    assert missing and missing[0].startswith("partition.date_column: column 'signed_up' not in")


def test_a_partition_write_replaces_only_its_rows(warehouse: Warehouse) -> None:
    day1 = pd.DataFrame({"row_id": ["a", "b"], "n": [1, 2], "rows": [["x"], ["y", "z"]]})
    day2 = pd.DataFrame({"row_id": ["c"], "n": [3], "rows": [[]]})
    write_partition(warehouse, "t__participants", day1, "2026-11-01", json_columns=("rows",))
    write_partition(warehouse, "t__participants", day2, "2026-11-02", json_columns=("rows",))
    # Day 1 again, now with a NULL in the integer column (pandas makes it float): the stored
    # BIGINT cannot take it as is, so the table is rewritten with both days.
    again = pd.DataFrame({"row_id": ["a2"], "n": [None], "rows": [["q"]]})
    write_partition(warehouse, "t__participants", again, "2026-11-01", json_columns=("rows",))
    assert stored_partitions(warehouse, "t__participants") == ["2026-11-01", "2026-11-02"]
    one = read_partition(warehouse, "t__participants", "2026-11-01", json_columns=("rows",))
    assert one["row_id"].tolist() == ["a2"] and one["rows"].tolist() == [["q"]]
    assert PARTITION_COLUMN not in one.columns
    two = read_partition(warehouse, "t__participants", "2026-11-02", json_columns=("rows",))
    assert two["row_id"].tolist() == ["c"] and int(two["n"].iloc[0]) == 3


def test_range_metadata_sums_counts_and_keeps_each_partition() -> None:
    meta: dict[str, dict[str, Any]] = {
        "2026-11-01": {"moments/rows": 3, "moments/flag": True, "moments/sample": "x"},
        "2026-11-02": {"moments/rows": 4, "moments/flag": False, "moments/sample": "y"},
    }
    merged = range_metadata(meta)
    assert merged["moments/rows"] == 7 and merged["moments/partition_count"] == 2
    assert merged["moments/partitions"].value == {
        "2026-11-01": {"moments/rows": 3},
        "2026-11-02": {"moments/rows": 4},
    }
    assert "moments/sample" not in merged
    assert range_metadata({"2026-11-01": meta["2026-11-01"]}) == meta["2026-11-01"]


def test_yaml_example_in_readme_shape(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            name: welcome
            source: {table: signups, row_id_column: id}
            identity: {identify_by: {column: email, type: EMAIL}}
            flow: {campaign_id: 1}
            partition: {date_column: signed_up_at, start_date: 2026-11-01, timezone: UTC}
            sensor: {watermark_column: updated_at, minimum_interval_s: 60}
            """
        )
    )
    audience = load_audience(path)
    assert audience.sensor is not None and audience.sensor.minimum_interval_s == 60
