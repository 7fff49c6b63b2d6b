"""The project definitions load from the audiences directory, and a dry run calls nothing."""

from __future__ import annotations

import importlib
import shutil
import socket
import sys
from pathlib import Path

import dagster as dg
import pytest

from moments_pipeline.config import ConfigError, load_audiences, load_form_sources
from moments_pipeline.dagster import MomentsResource, WarehouseResource, build_audience_assets

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from build_sample_warehouse import build_duckdb  # noqa: E402

SECRET = "definitions-test-key-5e6f"


def _load_defs_module(monkeypatch: pytest.MonkeyPatch, audiences: Path, url: str) -> dg.Definitions:
    monkeypatch.setenv("MOMENTS_AUDIENCES_DIR", str(audiences))
    monkeypatch.setenv("MOMENTS_WAREHOUSE_URL", url)
    monkeypatch.setenv("INFOBIP_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("INFOBIP_API_KEY", SECRET)
    sys.modules.pop("moments_pipeline.dagster.definitions", None)
    module = importlib.import_module("moments_pipeline.dagster.definitions")
    return module.defs


def test_definitions_load_with_the_full_asset_graph(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    defs = _load_defs_module(monkeypatch, REPO / "audiences", f"duckdb:///{tmp_path / 'w.duckdb'}")
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    names = load_audiences(REPO / "audiences")
    expected = {
        dg.AssetKey([n, step])
        for n in names
        for step in ("source", "participants", "quarantine", "flow_sync", "flow_report")
    }
    expected |= {  # mirror membership: the plan and the removals
        dg.AssetKey([n, step])
        for n, audience in names.items()
        if audience.membership == "mirror"
        for step in ("membership_plan", "flow_removals")
    }
    # The form catalog and one asset per form source (audiences/forms/*.yaml).
    expected |= {dg.AssetKey(["forms", "catalog"])} | {
        dg.AssetKey(["forms", n]) for n in load_form_sources(REPO / "audiences" / "forms")
    }
    assert set(graph.get_all_asset_keys()) == expected
    for name in names:
        report = dg.AssetKey([name, "flow_report"])
        assert graph.get(report).parent_keys == {dg.AssetKey([name, "flow_sync"])}
        assert len(graph.get_check_keys_for_assets({report})) == 4
        assert graph.get(report).group_name == name
    job = defs.resolve_job_def("sync_all_audiences")
    # One process per run: one rate budget for the account, one writer of a DuckDB file.
    assert job.executor_def is dg.in_process_executor


def test_a_bad_audience_file_names_the_file_and_field(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    shutil.copy(REPO / "audiences" / "newsletter_welcome.yaml", tmp_path / "ok.yaml")
    (tmp_path / "broken.yaml").write_text(
        "name: broken\nsource: {table: t}\n"
        "identity: {identify_by: {column: 'bad col', type: EMAIL}}\nflow: {campaign_id: 1}\n"
    )
    with pytest.raises(ConfigError) as excinfo:
        _load_defs_module(monkeypatch, tmp_path, f"duckdb:///{tmp_path / 'w.duckdb'}")
    message = str(excinfo.value)
    assert message.startswith(f"{tmp_path / 'broken.yaml'}: line 3: identity.identify_by.column: ")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_dry_run_computes_everything_and_calls_nothing(tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    build_duckdb(db)
    audience = load_audiences(REPO / "audiences")["newsletter_welcome"]
    # Nothing listens on this port: any API call would fail the run.
    moments = MomentsResource(base_url=f"http://127.0.0.1:{_closed_port()}", api_key=SECRET)
    warehouse = WarehouseResource(url=f"duckdb:///{db}")
    result = dg.materialize(
        build_audience_assets(audience),
        resources={"warehouse": warehouse, "moments": moments},
        run_config={"ops": {"newsletter_welcome__sync": {"config": {"dry_run": True}}}},
    )
    assert result.success
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert dg.AssetKey(["newsletter_welcome", "participants"]) in materialized
    assert dg.AssetKey(["newsletter_welcome", "flow_sync"]) not in materialized
    assert dg.AssetKey(["newsletter_welcome", "flow_report"]) not in materialized
    [observation] = result.get_asset_observation_events()
    meta = observation.asset_observation_data.asset_observation.metadata
    assert meta["moments/dry_run"].value is True
    with warehouse.open() as wh:
        participants = wh.fetch_all("SELECT count(*) FROM newsletter_welcome__participants")[0][0]
        batches = wh.fetch_all("SELECT count(*) FROM moments_sync_outbox")[0][0]
    assert meta["moments/would_send"].value == participants > 0
    assert batches == 0  # no ledger row: nothing planned, nothing sent
    preview = meta["moments/sample_payload"].value["participants"]
    assert preview and all("***" in p["identifyBy"]["identifier"] for p in preview)
    with warehouse.open() as wh:
        raw = {
            r[0] for r in wh.fetch_all("SELECT identify_by FROM newsletter_welcome__participants")
        }
    assert not raw & {p["identifyBy"]["identifier"] for p in preview}
    assert SECRET not in repr(result.all_events)
