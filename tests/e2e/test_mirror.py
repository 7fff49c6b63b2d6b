"""Mirror membership end to end, on DuckDB and PostgreSQL, against the served emulator.

The emulator keeps Infobip's 10 requests/s limit on here, so every scenario also proves that
adds and removals share the account's rate budget (no 429 in the emulator's request log).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pandas as pd
import pytest
from pydantic import SecretStr

from moments_pipeline.config import AudienceConfig, parse_audience
from moments_pipeline.dagster import MomentsResource, WarehouseResource, build_audience_assets
from moments_pipeline.emulator.settings import EmulatorSettings
from moments_pipeline.emulator.testing import ServedEmulator
from moments_pipeline.sync import RemovalState, SqlLedgerStore
from moments_pipeline.warehouse import connect_warehouse

API_KEY = "mirror-e2e-key-4242"
FLOW = 200000000000001


@pytest.fixture
def served() -> Iterator[ServedEmulator]:
    settings = EmulatorSettings(
        api_keys=[SecretStr(API_KEY)], rate_limit_per_s=10, processing_delay_s=0.05
    )
    with ServedEmulator(settings, api_key=API_KEY) as emulator:
        yield emulator


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'mirror.duckdb'}"
    return str(request.getfixturevalue("postgres_dsn"))


def _audience(name: str, membership: str, **removals: Any) -> AudienceConfig:
    return parse_audience(
        {
            "name": name,
            "source": {"table": f"{name}_rows", "row_id_column": "rid"},
            "identity": {"identify_by": {"column": "email", "type": "EMAIL"}, "emails": ["email"]},
            "flow": {"campaign_id": FLOW},
            "report": {"deadline_s": 20},
            "membership": membership,
            "removals": removals,
        }
    )


def _rows(url: str, audience: AudienceConfig, ids: range | list[int], tag: str = "") -> None:
    frame = pd.DataFrame(
        {
            "rid": [f"r{i}" for i in ids],
            "email": [f"{audience.name}{tag}{i}@example.com" for i in ids],
        }
    )
    wh = connect_warehouse(url)
    try:
        if not len(frame):
            frame = pd.DataFrame(
                {"rid": pd.Series([], dtype=str), "email": pd.Series([], dtype=str)}
            )
        wh.write_frame(f"{audience.name}_rows", frame, mode="replace")
    finally:
        wh.close()


def _run(
    url: str,
    served: ServedEmulator,
    audiences: list[AudienceConfig],
    *,
    run_config: dict[str, Any] | None = None,
    instance: dg.DagsterInstance | None = None,
) -> dg.ExecuteInProcessResult:
    assets = [a for audience in audiences for a in build_audience_assets(audience)]
    resources = {
        "warehouse": WarehouseResource(url=url),
        "moments": MomentsResource(base_url=served.base_url, api_key=API_KEY),
    }
    return dg.materialize(
        assets,
        resources=resources,
        raise_on_error=False,
        run_config=run_config or {},
        instance=instance,
    )


def _inspect(served: ServedEmulator, path: str) -> Any:
    response = httpx.get(f"{served.base_url}/_emulator/{path}", timeout=10)
    response.raise_for_status()
    return response.json()


def _in_flow(served: ServedEmulator) -> set[str]:
    profiles = _inspect(served, f"flows/{FLOW}/participants")
    return {email for profile in profiles for email in profile["emails"]}


def _deletes(served: ServedEmulator) -> list[dict[str, Any]]:
    return [r for r in _inspect(served, "requests") if r["operation"] == "remove-people-from-flow"]


def _no_429(served: ServedEmulator) -> None:
    log = _inspect(served, "requests")
    assert log, "the emulator saw requests"
    assert [r for r in log if r["status"] == 429] == []


def _guard(result: dg.ExecuteInProcessResult, name: str) -> Any:
    evaluations = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.asset_check_evaluation_data.check_name == "removals_within_guard"
        and e.asset_check_evaluation_data.asset_key == dg.AssetKey([name, "membership_plan"])
    ]
    assert len(evaluations) == 1
    return evaluations[0]


def _plan_meta(result: dg.ExecuteInProcessResult, name: str) -> dict[str, Any]:
    mats = result.asset_materializations_for_node(f"{name}__plan")
    assert len(mats) == 1
    return {k: v.value for k, v in mats[0].metadata.items()}


def test_removal_after_a_row_disappears_then_reentry(
    warehouse_url: str, served: ServedEmulator
) -> None:
    mirror = _audience("mirror", "mirror")
    _rows(warehouse_url, mirror, range(10))
    first = _run(warehouse_url, served, [mirror])
    assert first.success
    assert _plan_meta(first, "mirror")["moments/plan/adds"] == 10
    assert len(_in_flow(served)) == 10

    _rows(warehouse_url, mirror, range(1, 10))  # r0 left the audience: 1 of 10 (10 %)
    second = _run(warehouse_url, served, [mirror])
    assert second.success
    plan = _plan_meta(second, "mirror")
    assert (plan["moments/plan/removals"], plan["moments/plan/unchanged"]) == (1, 9)
    assert "mirror0@example.com" not in str(plan["moments/plan/removal_sample"])  # masked
    assert _in_flow(served) == {f"mirror{i}@example.com" for i in range(1, 10)}
    deletes = _deletes(served)
    assert [d["status"] for d in deletes] == [200]

    wh = connect_warehouse(warehouse_url)
    try:
        ledger = SqlLedgerStore(wh)
        done = ledger.removals("mirror", "", FLOW)
        assert [(r.state, r.kind, r.identifier) for r in done] == [
            (RemovalState.REMOVED, "EMAIL", "mirror0@example.com")
        ]
        (status,) = ledger.statuses(FLOW, [done[0].person_key])
        assert (status.status, status.delivered) == ("REMOVED", False)
    finally:
        wh.close()

    _rows(warehouse_url, mirror, range(10))  # r0 is back: added again
    third = _run(warehouse_url, served, [mirror])
    assert third.success
    assert _plan_meta(third, "mirror")["moments/plan/adds"] == 1
    assert len(_in_flow(served)) == 10
    assert len(_deletes(served)) == 1
    _no_429(served)


def test_guard_refuses_empty_source_and_half_drop_until_overridden(
    warehouse_url: str, served: ServedEmulator
) -> None:
    mirror = _audience("guarded", "mirror")
    _rows(warehouse_url, mirror, range(10))
    assert _run(warehouse_url, served, [mirror]).success

    _rows(warehouse_url, mirror, [])
    empty = _run(warehouse_url, served, [mirror])
    assert not empty.success
    verdict = _guard(empty, "guarded")
    assert not verdict.passed
    assert verdict.metadata["source_rows"].value == 0
    assert verdict.metadata["removals"].value == 10
    assert "0 rows" in str(verdict.description)
    assert _deletes(served) == []
    assert len(_in_flow(served)) == 10

    _rows(warehouse_url, mirror, range(5, 10))
    half = _run(warehouse_url, served, [mirror])
    verdict = _guard(half, "guarded")
    assert not verdict.passed
    assert verdict.metadata["share"].value == 0.5
    assert _deletes(served) == []
    materialized = {e.asset_key for e in half.get_asset_materialization_events()}
    assert dg.AssetKey(["guarded", "flow_removals"]) not in materialized

    instance = dg.DagsterInstance.ephemeral()
    override = {"ops": {"guarded__removal_guard": {"config": {"allow_mass_removal": True}}}}
    forced = _run(warehouse_url, served, [mirror], run_config=override, instance=instance)
    assert forced.success
    verdict = _guard(forced, "guarded")
    assert verdict.passed and verdict.metadata["overridden"].value is True
    assert instance.get_run_by_id(forced.run_id).tags["moments/allow_mass_removal"] == "true"
    removal = forced.asset_materializations_for_node("guarded__remove")[0]
    assert removal.metadata["moments/removed"].value == 5
    assert removal.metadata["moments/allow_mass_removal"].value is True
    assert _in_flow(served) == {f"guarded{i}@example.com" for i in range(5, 10)}
    _no_429(served)


def test_add_only_audience_people_are_never_removed(
    warehouse_url: str, served: ServedEmulator
) -> None:
    mirror = _audience("mirrored", "mirror", max_removal_share=1.0)
    adder = _audience("adder", "add")
    _rows(warehouse_url, mirror, range(6))
    _rows(warehouse_url, adder, range(4))
    assert _run(warehouse_url, served, [mirror, adder]).success
    assert len(_in_flow(served)) == 10

    _rows(warehouse_url, mirror, range(3))  # three mirror people leave
    result = _run(warehouse_url, served, [mirror, adder])
    assert result.success
    assert _plan_meta(result, "mirrored")["moments/plan/removals"] == 3
    remaining = _in_flow(served)
    assert {f"adder{i}@example.com" for i in range(4)} <= remaining
    assert remaining == {f"adder{i}@example.com" for i in range(4)} | {
        f"mirrored{i}@example.com" for i in range(3)
    }
    assert len(_deletes(served)) == 3
    _no_429(served)


def test_dry_run_stops_after_the_plan(warehouse_url: str, served: ServedEmulator) -> None:
    mirror = _audience("drymirror", "mirror", max_removal_share=1.0)
    _rows(warehouse_url, mirror, range(4))
    assert _run(warehouse_url, served, [mirror]).success
    _rows(warehouse_url, mirror, range(2))
    dry = {"ops": {"drymirror__remove": {"config": {"dry_run": True}}}}
    result = _run(warehouse_url, served, [mirror], run_config=dry)
    assert result.success
    assert _plan_meta(result, "drymirror")["moments/plan/removals"] == 2
    assert _deletes(served) == []
    assert len(_in_flow(served)) == 4


def test_the_sample_mirror_audience(sample_rig: Any) -> None:
    """The sample project's mirror audience (what ``make demo`` shows), on both warehouses."""
    from tests.e2e.conftest import SAMPLE_AUDIENCES

    audience = SAMPLE_AUDIENCES["active_subscribers"]
    first = sample_rig.materialize([audience])
    assert first.success
    assert _plan_meta(first, audience.name)["moments/plan/adds"] == 36
    wh = connect_warehouse(sample_rig.warehouse_url)
    try:
        wh.execute(
            "UPDATE subscribers SET status = 'unsubscribed' "
            "WHERE subscriber_id IN ('S0001', 'S0002', 'S0003')"
        )
    finally:
        wh.close()
    second = sample_rig.materialize([audience])
    assert second.success
    plan = _plan_meta(second, audience.name)
    assert (plan["moments/plan/removals"], plan["moments/plan/unchanged"]) == (3, 33)
    campaign = audience.flow.campaign_id
    assert len(sample_rig.inspect(f"flows/{campaign}/participants")) == 33
    deletes = [r for r in sample_rig.inspect("requests") if r["method"] == "DELETE"]
    assert [r["status"] for r in deletes] == [200, 200, 200]


def test_removal_is_per_partition(warehouse_url: str, served: ServedEmulator) -> None:
    """A person leaves partition P when P added them and is no longer among P's rows."""
    daily = parse_audience(
        {
            "name": "daily_mirror",
            "source": {"table": "daily_rows", "row_id_column": "rid"},
            "identity": {"identify_by": {"column": "email", "type": "EMAIL"}, "emails": ["email"]},
            "flow": {"campaign_id": FLOW},
            "report": {"deadline_s": 20},
            "partition": {"date_column": "day", "start_date": "2026-11-01"},
            "membership": "mirror",
            "removals": {"max_removal_share": 1.0},
        }
    )

    def write(day1: range, day2: range) -> None:
        frame = pd.DataFrame(
            {
                "rid": [f"a{i}" for i in day1] + [f"b{i}" for i in day2],
                "email": [f"day1-{i}@example.com" for i in day1]
                + [f"day2-{i}@example.com" for i in day2],
                "day": pd.to_datetime(["2026-11-01"] * len(day1) + ["2026-11-02"] * len(day2)),
            }
        )
        wh = connect_warehouse(warehouse_url)
        try:
            wh.write_frame("daily_rows", frame, mode="replace")
        finally:
            wh.close()

    def run(day: str) -> dg.ExecuteInProcessResult:
        resources = {
            "warehouse": WarehouseResource(url=warehouse_url),
            "moments": MomentsResource(base_url=served.base_url, api_key=API_KEY),
        }
        assets = build_audience_assets(daily)
        return dg.materialize(assets, resources=resources, partition_key=day, raise_on_error=False)

    write(range(4), range(4))
    assert run("2026-11-01").success and run("2026-11-02").success
    assert len(_in_flow(served)) == 8

    write(range(1, 4), range(4))  # day1-0 left day 1
    result = run("2026-11-01")
    assert result.success
    assert _plan_meta(result, "daily_mirror")["moments/plan/removals"] == 1
    assert _in_flow(served) == {f"day1-{i}@example.com" for i in range(1, 4)} | {
        f"day2-{i}@example.com" for i in range(4)
    }
    # Day 2's plan removes nobody: its people are all among its rows, day 1's are not its own.
    again = run("2026-11-02")
    assert again.success
    assert _plan_meta(again, "daily_mirror")["moments/plan/removals"] == 0
    assert len(_deletes(served)) == 1
