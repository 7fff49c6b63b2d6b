"""``every_row_accounted_for`` is blocking: when the stored tables do not reconcile, no send."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import dagster as dg
import pytest

from moments_pipeline.config import load_audiences
from moments_pipeline.dagster import (
    MomentsResource,
    WarehouseResource,
    _accounting,
    build_audience_assets,
)

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from build_sample_warehouse import build_duckdb  # noqa: E402


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_failed_row_accounting_stops_the_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "warehouse.duckdb"
    build_duckdb(db)
    audience = load_audiences(REPO / "audiences")["newsletter_welcome"]
    monkeypatch.setattr(_accounting, "problems", lambda recorded: ["a row went missing"])
    # Nothing listens on this port: had the sync step run, it could only have failed there.
    moments = MomentsResource(base_url=f"http://127.0.0.1:{_closed_port()}", api_key="k")
    warehouse = WarehouseResource(url=f"duckdb:///{db}")
    result = dg.materialize(
        build_audience_assets(audience),
        resources={"warehouse": warehouse, "moments": moments},
        raise_on_error=False,
    )
    assert not result.success
    [check] = [c for c in result.get_asset_check_evaluations() if not c.passed]
    assert check.check_name == "every_row_accounted_for"
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert materialized == {"source", "participants", "quarantine"}
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert "newsletter_welcome__prepare_checks" in started
    assert "newsletter_welcome__sync" not in started
    with warehouse.open() as wh:
        assert wh.fetch_all("SELECT count(*) FROM moments_sync_outbox")[0][0] == 0
