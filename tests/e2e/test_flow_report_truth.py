"""The flow report says the truth, through the real assets and the emulator.

- People Infobip answers ``REJECTED_PERSON_IN_FLOW`` for (here: everyone, sent again after the
  ledger was lost) are in the flow: ``moments/already_in_flow`` and ``moments/delivered``,
  never ``moments/rejected``, and the rejection-rate check agrees.
- Every recorded reason carries a detail: the quarantine table, the ledger's quarantine record
  (preparation's and the engine's refusals), the dropped values, and a reason on every status
  that is not ACCEPTED.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from moments_pipeline.sync import IN_FLOW_REASON
from moments_pipeline.warehouse import connect_warehouse
from tests.e2e.conftest import SAMPLE_AUDIENCES, Rig

LEDGER = ("moments_sync_participant_status", "moments_sync_batch_members", "moments_sync_outbox")


def _meta(result: dg.ExecuteInProcessResult, name: str, step: str) -> dict[str, Any]:
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey([name, step])
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_people_already_in_the_flow_are_reported_delivered(sample_rig: Rig) -> None:
    rig = sample_rig  # DuckDB (reports by callback) and PostgreSQL (polled)
    audiences = [SAMPLE_AUDIENCES["loyalty_customers"], SAMPLE_AUDIENCES["newsletter_welcome"]]
    first = rig.materialize(audiences)
    assert first.success
    warehouse = connect_warehouse(rig.warehouse_url)
    try:
        for name in ("loyalty_customers", "newsletter_welcome"):
            rows = warehouse.fetch_all(f"SELECT reason, detail FROM {name}__quarantine")
            assert rows and all(reason and detail for reason, detail in rows), name
            dropped = warehouse.fetch_all(f"SELECT reason, detail FROM {name}__dropped")
            assert all(reason and detail for reason, detail in dropped), name
        ledger_rows = warehouse.fetch_all("SELECT reason, detail FROM moments_sync_quarantine")
        reasons = {reason for reason, _ in ledger_rows}
        assert "INVALID_IDENTIFY_BY" in reasons
        assert all(detail for _, detail in ledger_rows), [r for r in ledger_rows if not r[1]]
        statuses = warehouse.fetch_all(
            "SELECT status, error_reason FROM moments_sync_participant_status"
        )
        assert all(reason for status, reason in statuses if status != "ACCEPTED")
        # The ledger is lost (a new warehouse, say): everyone is sent again, and Infobip
        # answers that they are already in the flow.
        for table in LEDGER:
            warehouse.execute(f"DELETE FROM {table}")
    finally:
        warehouse.close()

    name = "newsletter_welcome"
    accepted = _meta(first, name, "flow_report")["moments/accepted"]
    assert accepted > 0
    again = rig.materialize([SAMPLE_AUDIENCES[name]])
    assert again.success
    report = _meta(again, name, "flow_report")
    assert report["moments/already_in_flow"] == report["moments/delivered"] == accepted
    assert report["moments/accepted"] == report["moments/rejected"] == 0
    assert report["moments/rejected_by_reason"] == {}
    assert report["moments/by_status"] == {"REJECTED": accepted}  # the stored status column
    checks = {c.check_name: c for c in again.get_asset_check_evaluations()}
    assert all(c.passed for c in checks.values())
    rate = checks["rejection_rate_within_threshold"].metadata
    assert rate["rejected"].value == 0 and rate["already_in_flow"].value == accepted
    warehouse = connect_warehouse(rig.warehouse_url)
    try:
        reasons = warehouse.fetch_all(
            "SELECT DISTINCT error_reason FROM moments_sync_participant_status"
        )
    finally:
        warehouse.close()
    assert reasons == [(IN_FLOW_REASON,)]
