"""``source.connection`` names a configured warehouse or fails the definitions load."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from moments_pipeline.config import ConfigError, parse_audience
from moments_pipeline.dagster import MomentsResource, WarehouseResource, build_audience_assets
from moments_pipeline.dagster.definitions import build_definitions
from moments_pipeline.warehouse import connect_warehouse

PASSWORD = "src-pw-never-shown-81aa"
AUDIENCE_YAML = """\
name: crm_people
source:
  table: people
  connection: {connection}
  row_id_column: rid
identity:
  identify_by: {{column: email, type: EMAIL}}
flow: {{campaign_id: 200000000000001}}
"""


def _write_audience(directory: Path, connection: str) -> Path:
    path = directory / "crm_people.yaml"
    path.write_text(AUDIENCE_YAML.format(connection=connection))
    return path


def _moments() -> MomentsResource:
    return MomentsResource(base_url="http://127.0.0.1:9", api_key="k")


def test_an_unconfigured_connection_fails_the_load_naming_file_and_connection(
    tmp_path: Path,
) -> None:
    path = _write_audience(tmp_path, "crm")
    warehouse = WarehouseResource(url=f"duckdb:///{tmp_path / 'w.duckdb'}")
    with pytest.raises(ConfigError) as info:
        build_definitions(tmp_path, warehouse=warehouse, moments=_moments())
    message = str(info.value)
    assert f"{path}: line 4: source.connection: audience 'crm_people' reads from connection " in (
        message
    )
    assert "'crm', which is not configured" in message
    assert "MOMENTS_SOURCE_CRM_URL" in message


def test_a_configured_connection_loads(tmp_path: Path) -> None:
    _write_audience(tmp_path, "crm")
    warehouse = WarehouseResource(
        url=f"duckdb:///{tmp_path / 'w.duckdb'}",
        sources={"crm": f"postgresql://u:{PASSWORD}@localhost/crm"},
    )
    defs = build_definitions(tmp_path, warehouse=warehouse, moments=_moments())
    dg.Definitions.validate_loadable(defs)
    assert PASSWORD not in repr(warehouse)
    assert PASSWORD not in warehouse.redacted_source_url("crm")


def test_definitions_from_env_read_each_named_connection(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _write_audience(tmp_path, "crm")
    monkeypatch.setenv("MOMENTS_AUDIENCES_DIR", str(tmp_path))
    monkeypatch.setenv("MOMENTS_WAREHOUSE_URL", f"duckdb:///{tmp_path / 'w.duckdb'}")
    monkeypatch.setenv("INFOBIP_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("INFOBIP_API_KEY", "k")
    monkeypatch.delenv("MOMENTS_SOURCE_CRM_URL", raising=False)
    sys.modules.pop("moments_pipeline.dagster.definitions", None)
    with pytest.raises(ConfigError, match="MOMENTS_SOURCE_CRM_URL"):
        _ = importlib.import_module("moments_pipeline.dagster.definitions").defs
    monkeypatch.setenv("MOMENTS_SOURCE_CRM_URL", f"duckdb:///{tmp_path / 'crm.duckdb'}")
    sys.modules.pop("moments_pipeline.dagster.definitions", None)
    module = importlib.import_module("moments_pipeline.dagster.definitions")
    dg.Definitions.validate_loadable(module.defs)
    sys.modules.pop("moments_pipeline.dagster.definitions", None)


def test_the_source_step_reads_the_named_connection_into_the_ledger(tmp_path: Path) -> None:
    crm_url = f"duckdb:///{tmp_path / 'crm.duckdb'}"
    ledger_url = f"duckdb:///{tmp_path / 'ledger.duckdb'}"
    crm = connect_warehouse(crm_url)
    try:
        crm.write_frame("people", pd.DataFrame({"rid": ["r1"], "email": ["a@example.com"]}))
    finally:
        crm.close()
    path = _write_audience(tmp_path, "crm")
    audience = parse_audience(
        {
            "name": "crm_people",
            "source": {"table": "people", "connection": "crm", "row_id_column": "rid"},
            "identity": {"identify_by": {"column": "email", "type": "EMAIL"}},
            "flow": {"campaign_id": 200000000000001},
        },
        path,
    )
    source_asset = build_audience_assets(audience)[0]
    result = dg.materialize(
        [source_asset],
        resources={"warehouse": WarehouseResource(url=ledger_url, sources={"crm": crm_url})},
    )
    assert result.success
    ledger = connect_warehouse(ledger_url)
    try:
        assert ledger.read_table("crm_people__source_snapshot")["rid"].tolist() == ["r1"]
        assert not ledger.table_exists("people")
    finally:
        ledger.close()
