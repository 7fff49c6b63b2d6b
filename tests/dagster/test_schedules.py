"""Schedules from the audience YAML, evaluated in process as the daemon would at a tick."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from moments_pipeline.config import load_audiences, parse_audience
from moments_pipeline.dagster import MomentsResource, WarehouseResource
from moments_pipeline.dagster._catalog import audience_schedule
from moments_pipeline.dagster.definitions import build_definitions

REPO = Path(__file__).resolve().parents[2]
AUDIENCES = REPO / "audiences"
STEPS = ("source", "participants", "quarantine", "flow_sync", "flow_report")
ZURICH = ZoneInfo("Europe/Zurich")


def _defs(tmp_path: Path, *names: str) -> dg.Definitions:
    folder = tmp_path / "audiences"
    folder.mkdir()
    for name in names:
        shutil.copy(AUDIENCES / f"{name}.yaml", folder / f"{name}.yaml")
    return build_definitions(
        folder,
        warehouse=WarehouseResource(url=f"duckdb:///{tmp_path / 'w.duckdb'}"),
        moments=MomentsResource(base_url="http://127.0.0.1:9", api_key="k"),
    )


def _audience(schedule: dict[str, str]) -> object:
    return parse_audience(
        {
            "name": "signups",
            "source": {"table": "signups", "row_id_column": "rid"},
            "identity": {"identify_by": {"column": "email", "type": "EMAIL"}},
            "flow": {"campaign_id": 200000000000001},
            "schedule": schedule,
        }
    )


def test_the_sample_schedule_is_a_stopped_schedule_of_its_audience(tmp_path: Path) -> None:
    defs = _defs(tmp_path, "loyalty_customers", "newsletter_welcome")
    dg.Definitions.validate_loadable(defs)
    (schedule,) = list(defs.schedules or [])
    assert isinstance(schedule, dg.ScheduleDefinition)
    assert schedule.name == "loyalty_customers__schedule"
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 6 * * *", "Europe/Zurich")
    # A new deployment never starts sending by itself: an operator turns it on.
    assert schedule.default_status is dg.DefaultScheduleStatus.STOPPED
    job = defs.resolve_job_def(schedule.job_name)
    selected = job.asset_layer.selected_asset_keys
    assert selected == {dg.AssetKey(["loyalty_customers", s]) for s in STEPS}
    # Their checks run in the same run (the blocking one before the sync).
    graph = job.asset_layer.asset_graph
    checks = graph.get_check_keys_for_assets(selected)
    assert checks and checks <= set(graph.asset_check_keys)
    assert {c.asset_key for c in graph.asset_check_keys} <= selected
    # The job runs in one process, as every run of the project does.
    assert job.executor_def is dg.in_process_executor


def test_a_tick_requests_one_run_of_the_audience(tmp_path: Path) -> None:
    defs = _defs(tmp_path, "loyalty_customers")
    (schedule,) = list(defs.schedules or [])
    tick = datetime(2026, 12, 4, 6, 0, tzinfo=ZURICH)
    # Contexts are closed: an open one leaves Dagster's defs-state storage pointing at a
    # deleted test instance for the rest of the session.
    with (
        dg.instance_for_test() as instance,
        dg.build_schedule_context(instance=instance, scheduled_execution_time=tick) as context,
    ):
        result = schedule.evaluate_tick(context)
    assert result.skip_message is None
    (request,) = result.run_requests or []
    assert request.tags["moments/audience"] == "loyalty_customers"
    assert request.partition_key is None
    assert "moments/dry_run" not in request.tags


@pytest.mark.parametrize(
    ("cron", "timezone", "after", "expected"),
    [
        # 06:00 in Zurich is 05:00 UTC in winter and 04:00 UTC in summer.
        ("0 6 * * *", "Europe/Zurich", datetime(2026, 12, 4, 5, 30), datetime(2026, 12, 5, 5, 0)),
        ("0 6 * * *", "Europe/Zurich", datetime(2026, 7, 1, 3, 0), datetime(2026, 7, 1, 4, 0)),
        ("30 8 * * mon", "UTC", datetime(2026, 12, 4, 0, 0), datetime(2026, 12, 7, 8, 30)),
        ("@daily", "America/New_York", datetime(2026, 12, 4, 6, 0), datetime(2026, 12, 5, 5, 0)),
    ],
)
def test_ticks_fall_on_the_cron_in_its_timezone(
    cron: str, timezone: str, after: datetime, expected: datetime
) -> None:
    from dagster._utils.schedules import cron_string_iterator

    schedule = audience_schedule(_audience({"cron": cron, "timezone": timezone}))  # type: ignore[arg-type]
    assert schedule is not None
    utc = ZoneInfo("UTC")
    ticks = cron_string_iterator(
        after.replace(tzinfo=utc).timestamp(), schedule.cron_schedule, schedule.execution_timezone
    )
    assert next(ticks).astimezone(utc) == expected.replace(tzinfo=utc)


def test_a_partitioned_audience_tick_asks_for_the_day_that_just_ended() -> None:
    audience = _audience({"cron": "0 6 * * *", "timezone": "Europe/Zurich"})
    days = dg.DailyPartitionsDefinition(start_date="2026-11-01", timezone="Europe/Zurich")
    schedule = audience_schedule(audience, days)  # type: ignore[arg-type]
    assert schedule is not None

    # A stand-in for the audience's daily-partitioned group, to resolve the partitioned target.
    @dg.asset(name="source", key_prefix="signups", group_name="signups", partitions_def=days)
    def _source() -> None: ...

    repository = dg.Definitions(assets=[_source], schedules=[schedule]).get_repository_def()
    tick = datetime(2026, 12, 4, 6, 0, tzinfo=ZURICH)
    # Before the first day has ended there is nothing to sync: skipped, with the reason.
    early = datetime(2026, 11, 1, 6, 0, tzinfo=ZURICH)
    with (
        dg.instance_for_test() as instance,
        dg.build_schedule_context(
            instance=instance, scheduled_execution_time=tick, repository_def=repository
        ) as context,
        dg.build_schedule_context(
            instance=instance, scheduled_execution_time=early, repository_def=repository
        ) as early_context,
    ):
        (request,) = schedule.evaluate_tick(context).run_requests or []
        assert (request.partition_key, request.run_key) == ("2026-12-03", "2026-12-03")
        result = schedule.evaluate_tick(early_context)
    assert not result.run_requests
    assert result.skip_message is not None and "no complete day" in result.skip_message


def test_an_audience_without_schedule_has_none() -> None:
    audiences = load_audiences(AUDIENCES)
    assert audience_schedule(audiences["newsletter_welcome"]) is None
