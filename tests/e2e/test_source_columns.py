"""A ``table:`` source is read by the columns the audience uses; a typo fails early and helpfully;
a source may live in another warehouse than the ledger."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from moments_pipeline.config import AudienceConfig, parse_audience
from moments_pipeline.dagster import MomentsResource, WarehouseResource, build_audience_assets
from moments_pipeline.warehouse import connect_warehouse
from tests.e2e.conftest import API_KEY, Rig


def _audience(**source: Any) -> AudienceConfig:
    return parse_audience(
        {
            "name": "odd_columns",
            "source": {"table": "odd_people", "row_id_column": "rid", **source},
            "identity": {
                "identify_by": {"column": "email", "type": "EMAIL"},
                "external_id": "cid",
                "emails": ["email"],
            },
            "person": {"attributes": {"firstName": "first_name"}},
            "flow": {"campaign_id": 200000000000001},
            "report": {"deadline_s": 20, "max_rejection_rate": 0.5},
        }
    )


def _people() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rid": ["r1", "r2", "r3"],
            "cid": ["C1", "C2", "C3"],
            "email": ["ann@example.com", "bo@example.com", "cy@example.com"],
            "first_name": ["Ann", "Bo", "Cy"],
        }
    )


def _add_odd_column(url: str) -> None:
    # A column the audience never names, with a name no config could use.
    warehouse = connect_warehouse(url)
    try:
        warehouse.execute('ALTER TABLE odd_people ADD COLUMN "first name" VARCHAR')
        warehouse.execute("UPDATE odd_people SET \"first name\" = 'unused'")
    finally:
        warehouse.close()


def _failure_text(result: dg.ExecuteInProcessResult) -> str:
    texts = []
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        if data.user_failure_data is not None:
            texts.append(data.user_failure_data.description or "")
        if data.error is not None:
            texts.append(data.error.message)
    return "\n".join(texts)


def test_table_source_with_an_unused_odd_column_materializes(
    make_rig: Callable[[dict[str, Any]], Rig],
) -> None:
    rig = make_rig({"odd_people": _people()})
    _add_odd_column(rig.warehouse_url)
    result = rig.materialize([_audience()])
    assert result.success, _failure_text(result)
    warehouse = connect_warehouse(rig.warehouse_url)
    try:
        snapshot = warehouse.read_table("odd_columns__source_snapshot")
    finally:
        warehouse.close()
    assert sorted(snapshot.columns) == ["cid", "email", "first_name", "rid"]
    assert len(snapshot) == 3
    assert rig.add_requests() >= 1


def test_a_column_typo_fails_the_source_step_with_a_suggestion(
    make_rig: Callable[[dict[str, Any]], Rig],
) -> None:
    rig = make_rig({"odd_people": _people()})
    audience = parse_audience(
        {
            **_audience().model_dump(mode="json", exclude_defaults=True),
            "identity": {
                "identify_by": {"column": "email", "type": "EMAIL"},
                "external_id": "cid",
                "emails": ["emial"],
            },
        }
    )
    result = rig.materialize([audience])
    assert not result.success
    text = _failure_text(result)
    assert "identity.emails[0]: column 'emial' not in source (did you mean 'email'?)" in text
    failed = {e.step_key for e in result.get_step_failure_events()}
    assert failed == {"odd_columns__source"}
    assert rig.add_requests() == 0


def test_a_source_in_another_warehouse_materializes(
    make_rig: Callable[[dict[str, Any]], Rig], tmp_path: Path
) -> None:
    rig = make_rig({})
    crm_url = f"duckdb:///{tmp_path / 'crm.duckdb'}"
    crm = connect_warehouse(crm_url)
    try:
        crm.write_frame("odd_people", _people())
    finally:
        crm.close()
    resources = {
        **rig.resources,
        "warehouse": WarehouseResource(url=rig.warehouse_url, sources={"crm": crm_url}),
        "moments": MomentsResource(base_url=rig.emulator.base_url, api_key=API_KEY),
    }
    audience = _audience(connection="crm")
    assets = build_audience_assets(audience)
    result = dg.materialize(assets, resources=resources, raise_on_error=False)
    assert result.success, _failure_text(result)
    ledger = connect_warehouse(rig.warehouse_url)
    try:
        assert len(ledger.read_table("odd_columns__source_snapshot")) == 3
        assert not ledger.table_exists("odd_people")
    finally:
        ledger.close()
    assert rig.add_requests() >= 1


def test_a_duckdb_source_with_nul_text_into_a_postgres_ledger(
    tmp_path: Path, postgres_dsn: str, served_sample_emulator: Any
) -> None:
    # PostgreSQL TEXT cannot hold NUL; the snapshot stores U+FFFD in its place instead of
    # failing the step, and the row is still accounted for.
    crm_url = f"duckdb:///{tmp_path / 'crm.duckdb'}"
    people = _people()
    people.loc[0, "first_name"] = "A\x00nn"
    people.loc[1, "email"] = "b\x00o@example.com"
    crm = connect_warehouse(crm_url)
    try:
        crm.write_frame("odd_people", people)
    finally:
        crm.close()
    resources = {
        "warehouse": WarehouseResource(url=postgres_dsn, sources={"crm": crm_url}),
        "moments": MomentsResource(base_url=served_sample_emulator.base_url, api_key=API_KEY),
    }
    result = dg.materialize(
        build_audience_assets(_audience(connection="crm")),
        resources=resources,
        raise_on_error=False,
    )
    assert result.success, _failure_text(result)
    ledger = connect_warehouse(postgres_dsn)
    try:
        snapshot = ledger.read_table("odd_columns__source_snapshot")
        quarantined = {r for (r,) in ledger.fetch_all("SELECT row_id FROM odd_columns__quarantine")}
    finally:
        ledger.close()
    assert "A\ufffdnn" in set(snapshot["first_name"])
    assert quarantined == {"r2"}  # the address with NUL is not an address
