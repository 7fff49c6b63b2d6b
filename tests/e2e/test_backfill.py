"""Daily partitions and backfills through Dagster into the served emulator, exactly once.

A partitioned audience (sign-ups by day) is backfilled as one run per range
(``BackfillPolicy.single_run``); overlapping, repeated and concurrent backfills must put every
person into the flow exactly once (each email in exactly one accepted add request) with no
merge, and each partition's stored rows must be that day's rows only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import orjson
import pandas as pd
import pytest
import yaml

from moments_pipeline.config import PARTITION_COLUMN, AudienceConfig
from moments_pipeline.dagster import build_audience_assets
from moments_pipeline.dagster._partitions import UNRESOLVED_ELSEWHERE
from moments_pipeline.emulator.testing import ServedEmulator
from moments_pipeline.warehouse import connect_warehouse
from tests.e2e.conftest import API_KEY, SAMPLE_AUDIENCES, Rig

CAMPAIGN = 200000000000003  # a flow of data_samples/emulator.yaml
START = date(2026, 11, 1)
DAYS = 5
PER_DAY = 40
STEPS = ("source", "participants", "quarantine", "flow_sync", "flow_report")
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def signups(days: int = DAYS, per_day: int = PER_DAY) -> pd.DataFrame:
    """``per_day`` sign-ups on each of ``days`` days from START (timestamps within the day)."""
    rows = []
    for d in range(days):
        for i in range(per_day):
            n = d * per_day + i
            rows.append(
                {
                    "signup_id": f"s{n}",
                    "email": f"person{n}@example.org",
                    "first_name": f"P{n}",
                    "signed_up_at": pd.Timestamp(START + timedelta(days=d))
                    + pd.Timedelta(minutes=30 * (i % 40)),
                    "updated_at": pd.Timestamp("2026-12-01 08:00:00"),
                }
            )
    return pd.DataFrame(rows)


def daily_audience(name: str = "daily_welcome", **extra: Any) -> AudienceConfig:
    return AudienceConfig.model_validate(
        {
            "name": name,
            "source": {"table": "signups", "row_id_column": "signup_id"},
            "identity": {"identify_by": {"column": "email", "type": "EMAIL"}, "emails": ["email"]},
            "person": {"attributes": {"firstName": "first_name"}},
            "flow": {"campaign_id": CAMPAIGN},
            "report": {"deadline_s": 30},
            "partition": {"date_column": "signed_up_at", "start_date": START.isoformat()},
            **extra,
        }
    )


def backfill(
    rig: Rig, audience: AudienceConfig, first: str, last: str, **kwargs: Any
) -> dg.ExecuteInProcessResult:
    """Materialize a range in one run, as the UI's single-run backfill and the CLI do."""
    return dg.materialize(
        build_audience_assets(audience),
        resources=rig.resources,
        # The tags the CLI's --partition-range and a single-run UI backfill give the run.
        tags={RANGE_START: first, RANGE_END: last},
        raise_on_error=False,
        **kwargs,
    )


def sends_per_email(rig: Rig) -> Counter[str]:
    """How many add requests answered 200 carried each email (the flow's view of 'once')."""
    sent: Counter[str] = Counter()
    for exchange in rig.emulator.emulator.exchanges:
        if exchange.operation != "add-flow-participants" or exchange.status != 200:
            continue
        for participant in orjson.loads(exchange.request_body)["participants"]:
            sent[participant["identifyBy"]["identifier"]] += 1
    return sent


def day(n: int) -> str:
    return (START + timedelta(days=n)).isoformat()


@pytest.fixture
def rig(make_rig: Any) -> Rig:
    return make_rig({"signups": signups()})


def test_partitioned_assets_are_daily_and_backfill_in_one_run() -> None:
    [source, *_] = build_audience_assets(daily_audience())
    partitions = source.partitions_def
    assert isinstance(partitions, dg.DailyPartitionsDefinition)
    assert partitions.get_first_partition_key() == START.isoformat()
    assert source.backfill_policy == dg.BackfillPolicy.single_run()
    unpartitioned = build_audience_assets(daily_audience().model_copy(update={"partition": None}))
    assert unpartitioned[0].partitions_def is None
    assert unpartitioned[0].backfill_policy is None


def test_backfill_sends_each_day_once_and_stores_rows_per_partition(rig: Rig) -> None:
    audience = daily_audience()
    result = backfill(rig, audience, day(0), day(DAYS - 1))
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks), [c.check_name for c in checks if not c.passed]

    sent = sends_per_email(rig)
    assert len(sent) == DAYS * PER_DAY and set(sent.values()) == {1}
    assert rig.inspect("merges") == []

    warehouse = connect_warehouse(rig.warehouse_url)
    try:
        by_day = dict(
            warehouse.fetch_all(
                f'SELECT {PARTITION_COLUMN}, count(*) FROM "daily_welcome__participants" GROUP BY 1'
            )
        )
        assert by_day == {day(d): PER_DAY for d in range(DAYS)}
        # Each partition's snapshot is exactly that day's rows.
        wrong_day = warehouse.fetch_all(
            'SELECT count(*) FROM "daily_welcome__source_snapshot" '
            f"WHERE CAST(signed_up_at AS DATE) <> CAST({PARTITION_COLUMN} AS DATE)"
        )[0][0]
        assert wrong_day == 0
        batches = dict(
            warehouse.fetch_all(
                "SELECT partition_key, sum(size) FROM moments_sync_outbox "
                "WHERE audience = ? GROUP BY 1",
                ["daily_welcome"],
            )
        )
        assert batches == {day(d): PER_DAY for d in range(DAYS)}
    finally:
        warehouse.close()

    # A range's materialization counts every day and says what each one did.
    [report] = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["daily_welcome", "flow_sync"])
        and e.materialization.partition == day(0)
    ]
    partitions = report.metadata["moments/partitions"].value
    assert isinstance(partitions, dict) and sorted(partitions) == [day(d) for d in range(DAYS)]
    assert report.metadata["moments/participants_in"].value == DAYS * PER_DAY


def test_overlapping_and_repeated_backfills_send_nobody_twice(rig: Rig) -> None:
    audience = daily_audience()
    assert backfill(rig, audience, day(0), day(2)).success
    assert backfill(rig, audience, day(1), day(4)).success  # overlaps days 1 and 2
    assert backfill(rig, audience, day(0), day(4)).success  # repeats everything
    sent = sends_per_email(rig)
    assert len(sent) == DAYS * PER_DAY and set(sent.values()) == {1}
    assert rig.inspect("merges") == []


def test_concurrent_backfills_send_nobody_twice(
    postgres_dsn: str, served_sample_emulator: ServedEmulator
) -> None:
    # Two overlapping runs at once, each with its own connections to one PostgreSQL warehouse
    # and ledger: they contend for the lease and write the same days' tables. (Concurrent
    # runs on one DuckDB file are the concurrency work's subject, not this test's.)
    warehouse = connect_warehouse(postgres_dsn)
    try:
        # A fresh database: both runs also create the ledger and the audience's tables at once.
        warehouse.write_frame("signups", signups(), mode="replace")
    finally:
        warehouse.close()
    rig = Rig(postgres_dsn, served_sample_emulator)
    audience = daily_audience()
    results: dict[str, dg.ExecuteInProcessResult] = {}

    def run(name: str, first: int, last: int) -> None:
        results[name] = backfill(rig, audience, day(first), day(last))

    threads = [
        threading.Thread(target=run, args=("a", 0, 3)),
        threading.Thread(target=run, args=("b", 1, 4)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert {k: r.success for k, r in results.items()} == {"a": True, "b": True}
    sent = sends_per_email(rig)
    assert len(sent) == DAYS * PER_DAY and set(sent.values()) == {1}
    assert rig.inspect("merges") == []


def test_one_partition_replaces_only_its_rows(rig: Rig) -> None:
    audience = daily_audience()
    assert backfill(rig, audience, day(0), day(1)).success
    # The source changes on day 1 only: re-running day 1 replaces day 1's rows, day 0 stays.
    warehouse = connect_warehouse(rig.warehouse_url)
    try:
        warehouse.execute(
            "DELETE FROM signups WHERE signed_up_at >= TIMESTAMP '2026-11-02 12:00:00' "
            "AND signed_up_at < TIMESTAMP '2026-11-03 00:00:00'"
        )
    finally:
        warehouse.close()
    result = dg.materialize(
        build_audience_assets(audience),
        resources=rig.resources,
        partition_key=day(1),
        raise_on_error=False,
    )
    assert result.success
    warehouse = connect_warehouse(rig.warehouse_url)
    try:
        counts = dict(
            warehouse.fetch_all(
                f'SELECT {PARTITION_COLUMN}, count(*) FROM "daily_welcome__source_snapshot" '
                "GROUP BY 1"
            )
        )
    finally:
        warehouse.close()
    assert counts == {day(0): PER_DAY, day(1): 24}
    sent = sends_per_email(rig)
    assert len(sent) == 2 * PER_DAY and set(sent.values()) == {1}


def test_a_person_of_two_days_is_sent_once(make_rig: Any) -> None:
    frame = signups(days=2, per_day=10)
    frame.loc[15, "email"] = frame.loc[3, "email"]  # signs up again the next day
    rig = make_rig({"signups": frame})
    result = backfill(rig, daily_audience(), day(0), day(1))
    assert result.success
    sent = sends_per_email(rig)
    assert sent[frame.loc[3, "email"]] == 1 and len(sent) == 19
    assert rig.inspect("merges") == []


def test_the_identity_recheck_refuses_a_merge_across_partitions(make_rig: Any) -> None:
    # Day 0 sends customer c1 with an email; day 1 has customer c2 with that same email. Sent,
    # it would make Infobip merge two people: the re-check under the lease quarantines it.
    frame = signups(days=2, per_day=5)
    frame["customer_id"] = [f"c{i}" for i in range(len(frame))]
    frame.loc[7, "email"] = frame.loc[1, "email"]
    rig = make_rig({"signups": frame})
    audience = daily_audience(
        identity={
            "identify_by": {"column": "email", "type": "EMAIL"},
            "external_id": "customer_id",
            "emails": ["email"],
        }
    )
    result = backfill(rig, audience, day(0), day(1))
    assert result.success
    sent = sends_per_email(rig)
    assert sent[frame.loc[1, "email"]] == 1 and len(sent) == 9
    assert rig.inspect("merges") == []
    warehouse = connect_warehouse(rig.warehouse_url)
    try:
        quarantined = warehouse.fetch_all(
            "SELECT partition_key, row_id, reason FROM moments_sync_quarantine WHERE audience = ?",
            ["daily_welcome"],
        )
    finally:
        warehouse.close()
    assert [(p, r) for p, r, _ in quarantined] == [(day(1), "s7")]


def test_checks_executed_alone_read_every_stored_partition(rig: Rig) -> None:
    audience = daily_audience()
    assert backfill(rig, audience, day(0), day(2)).success
    assets = build_audience_assets(audience)
    checks = [a for a in assets if isinstance(a, dg.AssetChecksDefinition)]
    alone = dg.materialize(
        checks,
        resources=rig.resources,
        selection=dg.AssetSelection.all_asset_checks(),
        raise_on_error=False,
    )
    evaluations = alone.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations)
    # A lost row in one partition fails the accounting check, naming that partition.
    warehouse = connect_warehouse(rig.warehouse_url)
    try:
        warehouse.execute(
            f'DELETE FROM "daily_welcome__quarantine" WHERE {PARTITION_COLUMN} = ?', [day(1)]
        )
        warehouse.execute(
            'DELETE FROM "daily_welcome__participants" WHERE person_key IN ('
            f'SELECT person_key FROM "daily_welcome__participants" WHERE {PARTITION_COLUMN} = ? '
            "LIMIT 1)",
            [day(1)],
        )
    finally:
        warehouse.close()
    again = dg.materialize(
        checks,
        resources=rig.resources,
        selection=dg.AssetSelection.all_asset_checks(),
        raise_on_error=False,
    )
    [accounting] = [
        e for e in again.get_asset_check_evaluations() if e.check_name == "every_row_accounted_for"
    ]
    assert not accounting.passed
    assert accounting.metadata["moments/failed_partitions"].value == [day(1)]


def test_the_cli_backfills_a_partition_range(rig: Rig, tmp_path: Any) -> None:
    audiences = tmp_path / "audiences"
    audiences.mkdir()
    (audiences / "daily_welcome.yaml").write_text(
        yaml.safe_dump(daily_audience().model_dump(mode="json", exclude_defaults=True))
    )
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MOMENTS_AUDIENCES_DIR": str(audiences),
        "MOMENTS_WAREHOUSE_URL": rig.warehouse_url,
        "INFOBIP_BASE_URL": rig.emulator.base_url,
        "INFOBIP_API_KEY": API_KEY,
    }
    keys = ",".join(f"daily_welcome/{s}" for s in STEPS)
    command = [
        str(Path(sys.executable).with_name("dagster")),
        *("asset", "materialize", "-m", "moments_pipeline.dagster.definitions"),
        *("--select", keys, "--partition-range", f"{day(0)}...{day(2)}"),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RUN_SUCCESS" in done.stderr
    assert API_KEY not in done.stdout + done.stderr
    sent = sends_per_email(rig)
    assert len(sent) == 3 * PER_DAY and set(sent.values()) == {1}


def test_the_sample_partitioned_audience_on_duckdb_and_postgres(sample_rig: Rig) -> None:
    audience = SAMPLE_AUDIENCES["newsletter_daily"]
    assert audience.partition is not None and audience.sensor is not None
    days = ["2026-11-01", "2026-11-02", "2026-11-03"]
    result = backfill(sample_rig, audience, days[0], days[-1])
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())
    sent = sends_per_email(sample_rig)
    assert sent and set(sent.values()) == {1}  # the one who signed up twice: sent once
    assert sample_rig.inspect("merges") == []
    [sync] = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["newsletter_daily", "flow_sync"])
        and e.materialization.partition == days[1]
    ]
    per_day = sync.metadata["moments/partitions"].value
    assert isinstance(per_day, dict)
    assert per_day[days[1]]["moments/already_delivered"] == 1


def test_a_person_whose_first_send_is_unresolved_is_not_sent_again(make_rig: Any) -> None:
    frame = signups(days=2, per_day=5)
    frame.loc[7, "email"] = frame.loc[2, "email"]  # day 1 repeats a person of day 0
    rig = make_rig({"signups": frame})
    audience = daily_audience(report={"deadline_s": 1.0})
    # Day 0's reports come far too late: its people stay PENDING after its run.
    httpx.put(
        f"{rig.emulator.base_url}/_emulator/faults", json={"report_delay_s": 120}
    ).raise_for_status()
    first = dg.materialize(
        build_audience_assets(audience),
        resources=rig.resources,
        partition_key=day(0),
        raise_on_error=False,
    )
    assert first.success
    httpx.put(f"{rig.emulator.base_url}/_emulator/faults", json={}).raise_for_status()
    second = dg.materialize(
        build_audience_assets(audience),
        resources=rig.resources,
        partition_key=day(1),
        raise_on_error=False,
    )
    assert second.success
    sent = sends_per_email(rig)
    assert sent[frame.loc[2, "email"]] == 1 and len(sent) == 9
    warehouse = connect_warehouse(rig.warehouse_url)
    try:
        held = warehouse.fetch_all(
            "SELECT partition_key, row_id, reason FROM moments_sync_quarantine "
            "WHERE audience = ? AND reason = ?",
            ["daily_welcome", UNRESOLVED_ELSEWHERE],
        )
    finally:
        warehouse.close()
    assert held == [(day(1), "s7", UNRESOLVED_ELSEWHERE)]
