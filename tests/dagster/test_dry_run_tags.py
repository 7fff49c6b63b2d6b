"""A dry run is tagged ``moments/dry_run=true``, named so where Dagster allows, and masked."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg

from moments_pipeline.config import load_audiences
from moments_pipeline.dagster import MomentsResource, WarehouseResource
from moments_pipeline.dagster._catalog import DRY_RUN_JOB, DRY_RUN_TAG
from moments_pipeline.dagster.definitions import build_definitions

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from build_sample_warehouse import build_duckdb  # noqa: E402

SECRET = "dry-run-tag-test-key-77a1"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _defs(tmp_path: Path) -> tuple[dg.Definitions, WarehouseResource]:
    db = tmp_path / "warehouse.duckdb"
    build_duckdb(db)
    warehouse = WarehouseResource(url=f"duckdb:///{db}")
    # Nothing listens on this port: any API call would fail the run.
    moments = MomentsResource(base_url=f"http://127.0.0.1:{_closed_port()}", api_key=SECRET)
    return build_definitions(REPO / "audiences", warehouse=warehouse, moments=moments), warehouse


def _raw_identifiers(warehouse: WarehouseResource, audience: str) -> set[str]:
    values: set[str] = set()
    with warehouse.open() as wh:
        frame = wh.read_table(f"{audience}__participants")
    for column in ("identify_by", "external_id"):
        if column in frame:
            values |= {str(v) for v in frame[column].dropna()}
    for column in ("emails", "phones"):
        for cell in frame[column].dropna():
            values |= set(json.loads(cell) if isinstance(cell, str) else cell)
    return {v for v in values if v}


def _identifiers_shown(participant: dict[str, Any]) -> list[str]:
    person = participant.get("person", {})
    contacts = person.get("contactInformation", {})
    return [
        participant["identifyBy"]["identifier"],
        *([person["externalId"]] if "externalId" in person else []),
        *(p["number"] for p in contacts.get("phone", [])),
        *(e["address"] for e in contacts.get("email", [])),
    ]


def test_the_dry_run_job_tags_its_runs_sends_nothing_and_masks_every_preview(
    tmp_path: Path,
) -> None:
    defs, warehouse = _defs(tmp_path)
    job = defs.resolve_job_def(DRY_RUN_JOB)
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        assert run is not None
        # The runs list shows the job's name and the tag.
        assert run.job_name == "dry_run_all_audiences"
        assert run.tags[DRY_RUN_TAG] == "true"
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert "participants" in materialized
    assert not materialized & {"flow_sync", "flow_report"}
    observations = result.get_asset_observation_events()
    audiences = {o.asset_key.path[0] for o in observations}
    # Every unpartitioned audience (a daily one is dry-run one day at a time, tagged).
    expected = {n for n, a in load_audiences(REPO / "audiences").items() if a.partition is None}
    assert audiences == expected and len(expected) >= 3
    with warehouse.open() as wh:
        assert wh.fetch_all("SELECT count(*) FROM moments_sync_outbox")[0][0] == 0
    for observation in observations:
        audience = observation.asset_key.path[0]
        meta = observation.asset_observation_data.asset_observation.metadata
        preview = meta["moments/sample_payload"].value["participants"]
        assert preview, audience
        shown = [v for p in preview for v in _identifiers_shown(p)]
        raw = _raw_identifiers(warehouse, audience)
        assert shown and all("***" in v for v in shown), shown
        assert not raw & set(shown), audience
    assert SECRET not in repr(result.all_events)


def test_a_dry_run_from_any_job_is_tagged_by_its_sync_step(tmp_path: Path) -> None:
    defs, _ = _defs(tmp_path)
    job = defs.resolve_job_def("sync_all_audiences")
    keys = [dg.AssetKey(["newsletter_welcome", s]) for s in ("source", "participants")]
    keys += [dg.AssetKey(["newsletter_welcome", s]) for s in ("quarantine", "flow_sync")]
    with dg.instance_for_test() as instance:
        dry = job.execute_in_process(
            instance=instance,
            asset_selection=keys,
            run_config={"ops": {"newsletter_welcome__sync": {"config": {"dry_run": True}}}},
        )
        assert dry.success
        dry_run = instance.get_run_by_id(dry.run_id)
        assert dry_run is not None and dry_run.tags.get(DRY_RUN_TAG) == "true"
        # A run without a dry sync step is not tagged.
        plain = job.execute_in_process(instance=instance, asset_selection=keys[:3])
        plain_run = instance.get_run_by_id(plain.run_id)
        assert plain_run is not None and DRY_RUN_TAG not in plain_run.tags


def test_the_tag_alone_makes_any_run_a_dry_run(tmp_path: Path) -> None:
    defs, warehouse = _defs(tmp_path)
    job = defs.resolve_job_def("sync_all_audiences")
    keys = [dg.AssetKey(["cart_abandoners", s]) for s in ("source", "participants", "quarantine")]
    keys += [
        dg.AssetKey(["cart_abandoners", "flow_sync"]),
        dg.AssetKey(["cart_abandoners", "flow_report"]),
    ]
    with dg.instance_for_test() as instance:
        # No dry_run in the config: the tag says dry run, so nothing may be sent (the API's
        # port is closed: a send would fail the step).
        result = job.execute_in_process(
            instance=instance, asset_selection=keys, tags={DRY_RUN_TAG: "true"}
        )
    assert result.success
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert not materialized & {"flow_sync", "flow_report"}
    assert len(result.get_asset_observation_events()) == 1
    with warehouse.open() as wh:
        assert wh.fetch_all("SELECT count(*) FROM moments_sync_outbox")[0][0] == 0


def test_the_dry_run_job_from_the_command_line_sends_nothing(tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    build_duckdb(db)
    (tmp_path / "home").mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "MOMENTS_AUDIENCES_DIR": str(REPO / "audiences"),
        "MOMENTS_WAREHOUSE_URL": f"duckdb:///{db}",
        "INFOBIP_BASE_URL": f"http://127.0.0.1:{_closed_port()}",
        "INFOBIP_API_KEY": SECRET,
    }
    dagster = Path(sys.executable).with_name("dagster")
    done = subprocess.run(
        [
            str(dagster),
            "job",
            "execute",
            "-m",
            "moments_pipeline.dagster.definitions",
            "-j",
            DRY_RUN_JOB,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "add-flow-participants" not in output
    assert SECRET not in output
    with WarehouseResource(url=f"duckdb:///{db}").open() as wh:
        assert wh.fetch_all("SELECT count(*) FROM moments_sync_outbox")[0][0] == 0


def test_one_day_of_a_daily_audience_is_dry_run_by_the_tag(tmp_path: Path) -> None:
    defs, warehouse = _defs(tmp_path)
    daily = [n for n, a in load_audiences(REPO / "audiences").items() if a.partition is not None]
    assert daily
    name = daily[0]
    job = defs.resolve_job_def("sync_all_audiences")
    steps = ("source", "participants", "quarantine", "flow_sync", "flow_report")
    day = load_audiences(REPO / "audiences")[name].partition.start_date.isoformat()  # type: ignore[union-attr]
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(
            instance=instance,
            asset_selection=[dg.AssetKey([name, s]) for s in steps],
            partition_key=day,
            tags={DRY_RUN_TAG: "true"},
        )
    assert result.success
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert "participants" in materialized
    assert not materialized & {"flow_sync", "flow_report"}
    (observation,) = result.get_asset_observation_events()
    assert (
        observation.asset_observation_data.asset_observation.metadata["moments/would_send"].value
        > 0
    )
    with warehouse.open() as wh:
        assert wh.fetch_all("SELECT count(*) FROM moments_sync_outbox")[0][0] == 0


def test_the_tag_alone_keeps_form_sources_and_removals_from_sending(tmp_path: Path) -> None:
    defs, warehouse = _defs(tmp_path)
    job = defs.resolve_job_def("sync_all_audiences")
    mirror = [n for n, a in load_audiences(REPO / "audiences").items() if a.membership == "mirror"]
    assert mirror
    steps = ("source", "participants", "quarantine", "membership_plan", "flow_sync")
    keys = [dg.AssetKey([mirror[0], s]) for s in (*steps, "flow_report", "flow_removals")]
    keys.append(dg.AssetKey(["forms", "store_signups"]))
    with dg.instance_for_test() as instance:
        # The API's port is closed: a submission, an add or a DELETE would fail the run.
        result = job.execute_in_process(
            instance=instance, asset_selection=keys, tags={DRY_RUN_TAG: "true"}
        )
    assert result.success
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    observed = {e.asset_key for e in result.get_asset_observation_events()}
    sending = {
        dg.AssetKey(["forms", "store_signups"]),
        dg.AssetKey([mirror[0], "flow_removals"]),
        dg.AssetKey([mirror[0], "flow_sync"]),
    }
    assert not materialized & sending
    assert sending <= observed
    with warehouse.open() as wh:
        assert wh.fetch_all("SELECT count(*) FROM moments_sync_outbox")[0][0] == 0
