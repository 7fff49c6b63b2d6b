"""Warehouse sensors, evaluated with ``build_sensor_context`` on DuckDB and on PostgreSQL.

One aggregate query per tick, one RunRequest per changed partition, run keys from the
transition so that a repeated tick asks for nothing new, a permanent error raising, a transient
one skipping with its reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from moments_pipeline.config import AudienceConfig
from moments_pipeline.dagster import WarehouseResource
from moments_pipeline.dagster._sensors import (
    SensorConfigError,
    build_audience_sensor,
    build_sensors,
    sensor_name,
)
from moments_pipeline.warehouse import connect_warehouse

DAYS = ["2026-11-01", "2026-11-02", "2026-11-03"]


def signups() -> pd.DataFrame:
    rows = []
    for d, day in enumerate(DAYS):
        for i in range(4):
            rows.append(
                {
                    "signup_id": f"s{d}-{i}",
                    "email": f"p{d}-{i}@example.org",
                    "signed_up_at": pd.Timestamp(f"{day} 0{i}:15:00"),
                    "updated_at": pd.Timestamp(f"{day} 09:00:00"),
                }
            )
    return pd.DataFrame(rows)


def audience(**changes: Any) -> AudienceConfig:
    data: dict[str, Any] = {
        "name": "daily_welcome",
        "source": {"table": "signups", "row_id_column": "signup_id"},
        "identity": {"identify_by": {"column": "email", "type": "EMAIL"}, "emails": ["email"]},
        "flow": {"campaign_id": 200000000000003},
        "partition": {"date_column": "signed_up_at", "start_date": DAYS[0]},
        "sensor": {"watermark_column": "updated_at", "minimum_interval_s": 30},
    }
    data.update(changes)
    return AudienceConfig.model_validate(data)


@pytest.fixture(params=["duckdb", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    else:
        url = request.getfixturevalue("postgres_dsn")
    warehouse = connect_warehouse(url)
    try:
        warehouse.write_frame("signups", signups(), mode="replace")
    finally:
        warehouse.close()  # the sensor opens its own, read-only
    yield url


def run_sql(url: str, sql: str) -> None:
    warehouse = connect_warehouse(url)
    try:
        warehouse.execute(sql)
    finally:
        warehouse.close()


def tick(url: str, cursor: str | None = None, **changes: Any) -> dg.SensorResult | dg.SkipReason:
    sensor = build_audience_sensor(audience(**changes))
    assert sensor is not None
    context = dg.build_sensor_context(
        cursor=cursor, resources={"warehouse": WarehouseResource(url=url)}
    )
    return sensor(context)


def test_first_tick_requests_each_day_then_nothing(url: str) -> None:
    first = tick(url)
    assert isinstance(first, dg.SensorResult)
    assert [r.partition_key for r in first.run_requests or []] == DAYS
    keys = [r.run_key for r in first.run_requests or []]
    assert len(set(keys)) == 3 and all("->" in str(k) for k in keys)
    cursor = json.loads(first.cursor or "")
    assert cursor["fingerprints"][DAYS[0]].startswith("4|2026-11-01 09:00:00")

    again = tick(url, first.cursor)
    assert isinstance(again, dg.SkipReason)
    assert "no change in 3 partition(s)" in (again.skip_message or "")


def test_a_changed_day_is_one_request_with_a_transition_key(url: str) -> None:
    first = tick(url)
    assert isinstance(first, dg.SensorResult)
    run_sql(
        url,
        "UPDATE signups SET updated_at = TIMESTAMP '2026-11-05 10:00:00' WHERE signup_id = 's1-2'",
    )
    second = tick(url, first.cursor)
    assert isinstance(second, dg.SensorResult)
    [request] = second.run_requests or []
    assert request.partition_key == DAYS[1]
    before = next(r.run_key for r in first.run_requests or [] if r.partition_key == DAYS[1])
    assert request.run_key != before
    # A tick that evaluates the same change again (its cursor update lost) asks for the same
    # run key, which Dagster launches once.
    repeat = tick(url, first.cursor)
    assert isinstance(repeat, dg.SensorResult)
    assert [r.run_key for r in repeat.run_requests or []] == [request.run_key]
    assert isinstance(tick(url, second.cursor), dg.SkipReason)


def test_new_rows_and_a_day_emptied_are_changes(url: str) -> None:
    first = tick(url)
    assert isinstance(first, dg.SensorResult)
    run_sql(url, "DELETE FROM signups WHERE signup_id LIKE 's0-%'")
    run_sql(
        url,
        "INSERT INTO signups VALUES ('s2-9', 'new@example.org', "
        "TIMESTAMP '2026-11-03 22:00:00', TIMESTAMP '2026-11-03 09:00:00')",
    )
    second = tick(url, first.cursor)
    assert isinstance(second, dg.SensorResult)
    assert sorted(r.partition_key for r in second.run_requests or []) == [DAYS[0], DAYS[2]]
    assert DAYS[0] not in json.loads(second.cursor or "")["fingerprints"]
    assert isinstance(tick(url, second.cursor), dg.SkipReason)


def test_a_missing_watermark_column_fails_the_tick(url: str) -> None:
    with pytest.raises(SensorConfigError, match=r"sensor\.watermark_column: column 'updated'"):
        tick(url, sensor={"watermark_column": "updated"})


def test_a_text_date_column_fails_the_tick(url: str) -> None:
    with pytest.raises(SensorConfigError, match=r"partition\.date_column: column 'email' is"):
        tick(url, partition={"date_column": "email", "start_date": DAYS[0]})


def test_unpartitioned_audience_gets_one_request_for_the_source(url: str) -> None:
    first = tick(url, partition=None)
    assert isinstance(first, dg.SensorResult)
    [request] = first.run_requests or []
    assert request.partition_key is None
    assert isinstance(tick(url, first.cursor, partition=None), dg.SkipReason)
    run_sql(
        url,
        "UPDATE signups SET updated_at = TIMESTAMP '2026-12-01 00:00:00' WHERE signup_id = 's0-0'",
    )
    second = tick(url, first.cursor, partition=None)
    assert isinstance(second, dg.SensorResult) and len(second.run_requests or []) == 1


def test_an_unreachable_postgres_skips_with_the_reason() -> None:
    result = tick("postgresql://nobody:secret-pw@127.0.0.1:9/none?connect_timeout=2")
    assert isinstance(result, dg.SkipReason)
    message = result.skip_message or ""
    assert "warehouse not reachable" in message and "secret-pw" not in message


def test_a_duckdb_file_locked_by_another_process_skips(tmp_path: Path) -> None:
    path = tmp_path / "locked.duckdb"
    url = f"duckdb:///{path}"
    warehouse = connect_warehouse(url)
    warehouse.write_frame("signups", signups(), mode="replace")
    warehouse.close()
    holder = textwrap.dedent(
        f"""
        import sys, time, duckdb
        con = duckdb.connect({str(path)!r})
        print("locked", flush=True)
        sys.stdin.read()
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "locked"
        result = tick(url)
        assert isinstance(result, dg.SkipReason)
        assert "warehouse not reachable" in (result.skip_message or "")
    finally:
        process.communicate(input="", timeout=30)
    assert isinstance(tick(url), dg.SensorResult)  # once free, the next tick goes on


def test_sensors_are_opt_in_and_named_after_the_audience() -> None:
    assert build_audience_sensor(audience(sensor=None)) is None
    [sensor] = build_sensors([audience(), audience(name="other", sensor=None)])
    assert sensor.name == sensor_name(audience()) == "daily_welcome__source_changed"
    assert sensor.minimum_interval_seconds == 30
    assert sensor.asset_selection is not None
