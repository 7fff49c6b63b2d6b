"""The forms assets through Dagster: the sample form sources against the served emulator.

The catalog lands in the warehouse with its changes as metadata; the sample submissions source
submits each valid row once and quarantines the others with reasons; the views source counts
each event once; a second materialization sends nothing; the checks, executed alone, pass and
send nothing; a bad form source file fails the definitions load naming file, line and field.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import dagster as dg
import httpx
import pytest
from pydantic import SecretStr

from moments_pipeline.dagster._resources import MomentsResource, WarehouseResource
from moments_pipeline.dagster.definitions import AudienceConfigError, build_definitions
from moments_pipeline.emulator import EmulatorSettings
from moments_pipeline.emulator.testing import ServedEmulator
from moments_pipeline.warehouse import DuckDBWarehouse

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from build_sample_warehouse import build_duckdb  # noqa: E402

from .support import FORM  # noqa: E402

FORM_KEYS = [dg.AssetKey(["forms", n]) for n in ("catalog", "store_signups", "kiosk_views")]


def _defs(tmp_path: Path, base_url: str) -> dg.Definitions:
    audiences = tmp_path / "audiences"
    shutil.copytree(REPO / "audiences", audiences)
    return build_definitions(
        audiences,
        warehouse=WarehouseResource(url=f"duckdb:///{tmp_path / 'wh.duckdb'}"),
        moments=MomentsResource(base_url=base_url, api_key="test-key"),
    )


def _materialize(defs: dg.Definitions, selection: dg.AssetSelection) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)],  # type: ignore[union-attr]
        resources=defs.resources,
        selection=selection,
        raise_on_error=False,
    )


def _meta(result: dg.ExecuteInProcessResult, name: str) -> dict[str, object]:
    for event in result.get_asset_materialization_events():
        if event.asset_key == dg.AssetKey(["forms", name]):
            return {k: v.value for k, v in event.materialization.metadata.items()}
    raise AssertionError(f"forms/{name} not materialized")


def test_sample_form_sources_through_dagster(tmp_path: Path) -> None:
    build_duckdb(tmp_path / "wh.duckdb")
    settings = EmulatorSettings(api_keys=[SecretStr("test-key")], rate_limit_per_s=None)
    with ServedEmulator(settings, api_key="test-key") as served:
        defs = _defs(tmp_path, served.base_url)
        selection = dg.AssetSelection.assets(*FORM_KEYS)
        first = _materialize(defs, selection | dg.AssetSelection.checks_for_assets(*FORM_KEYS))
        assert first.success
        catalog, signups, views = (
            _meta(first, n) for n in ("catalog", "store_signups", "kiosk_views")
        )
        assert catalog["moments/forms"] == 2 and catalog["moments/forms_added"] == sorted(
            served.emulator.forms
        )
        # 8 rows: a bad email, a blank email, a forbidden '<' are quarantined; 5 submitted.
        assert signups["moments/rows_in"] == 8 and signups["moments/submitted"] == 5
        assert signups["moments/quarantined_by_reason"] == {
            "FORM_FIELD_INVALID": 1,  # '<' in first_name (forbiddenSymbols)
            "INVALID_IDENTIFY_BY": 1,  # not-an-email
            "MISSING_IDENTIFY_BY": 1,  # blank email
        }
        assert views["moments/submitted"] == 12
        assert len(served.emulator.form_submissions) == 5
        assert served.emulator.form_views[FORM] == 12
        checks = {c.check_name: c.passed for c in first.get_asset_check_evaluations()}
        assert checks and all(checks.values()), checks
        # Nothing lands twice; the catalog says nothing changed.
        again = _materialize(defs, selection)
        assert again.success and _meta(again, "store_signups")["moments/sent_this_run"] == 0
        assert _meta(again, "catalog")["moments/forms_changed"] == []
        assert len(served.emulator.form_submissions) == 5
        assert served.emulator.form_views[FORM] == 12
        # The checks alone read what is recorded and send nothing.
        before = len(httpx.get(f"{served.base_url}/_emulator/requests").json())
        alone = _materialize(defs, dg.AssetSelection.checks_for_assets(*FORM_KEYS))
        assert alone.success and not alone.get_asset_materialization_events()
        assert len(httpx.get(f"{served.base_url}/_emulator/requests").json()) == before
        # What lands in the warehouse.
        wh = DuckDBWarehouse(tmp_path / "wh.duckdb")
        try:
            fields = wh.fetch_all(
                "SELECT field_id FROM moments_form_fields WHERE form_id = ?", [FORM]
            )
            results = dict(wh.fetch_all("SELECT row_id, state FROM form_store_signups__results"))
        finally:
            wh.close()
        assert ("email",) in fields
        assert results["SU-0001"] == "SUBMITTED" and "SU-0004" not in results


def test_form_turned_inactive_fails_the_step_clearly(tmp_path: Path) -> None:
    build_duckdb(tmp_path / "wh.duckdb")
    settings = EmulatorSettings(api_keys=[SecretStr("test-key")], rate_limit_per_s=None)
    with ServedEmulator(settings, api_key="test-key") as served:
        served.emulator.forms[FORM]["formStatus"] = "DISABLED"
        defs = _defs(tmp_path, served.base_url)
        result = _materialize(
            defs, dg.AssetSelection.assets(dg.AssetKey(["forms", "store_signups"]))
        )
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        text = str(failure.step_failure_data.error)
        assert FORM in text and "not ACTIVE" in text and "DISABLED" in text
        assert served.emulator.form_submissions == []


def test_bad_form_source_file_fails_the_load(tmp_path: Path) -> None:
    audiences = tmp_path / "audiences"
    shutil.copytree(REPO / "audiences", audiences)
    (audiences / "forms" / "broken.yaml").write_text(
        "name: broken\nform: {id: abc}\nsource: {table: t}\nfeilds: {email: email}\n"
    )
    with pytest.raises(AudienceConfigError) as raised:
        build_definitions(
            audiences,
            warehouse=WarehouseResource(url=f"duckdb:///{tmp_path / 'wh.duckdb'}"),
            moments=MomentsResource(base_url="http://127.0.0.1:9", api_key="k"),
        )
    assert "broken.yaml: line 4: feilds: unknown field (did you mean 'fields'?)" in str(
        raised.value
    )


def test_a_scheduled_form_source_gets_a_schedule(tmp_path: Path) -> None:
    audiences = tmp_path / "audiences"
    shutil.copytree(REPO / "audiences", audiences)
    path = audiences / "forms" / "kiosk_views.yaml"
    path.write_text(path.read_text() + 'schedule: {cron: "0 6 * * *", timezone: Europe/Zurich}\n')
    defs = build_definitions(
        audiences,
        warehouse=WarehouseResource(url=f"duckdb:///{tmp_path / 'wh.duckdb'}"),
        moments=MomentsResource(base_url="http://127.0.0.1:9", api_key="k"),
    )
    schedule = defs.get_schedule_def("form_kiosk_views__schedule")
    assert schedule.cron_schedule == "0 6 * * *"
    assert schedule.execution_timezone == "Europe/Zurich"
    assert schedule.default_status is dg.DefaultScheduleStatus.STOPPED
