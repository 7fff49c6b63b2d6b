"""Every sample audience through Dagster into the emulator, on DuckDB and on PostgreSQL."""

from __future__ import annotations

from collections import Counter
from typing import Any

import dagster as dg

from moments_pipeline.config import Membership
from moments_pipeline.dagster import _tables
from moments_pipeline.sync import SqlLedgerStore, prior_identities_frame
from moments_pipeline.warehouse import connect_warehouse
from tests.e2e.conftest import API_KEY, SAMPLE_AUDIENCES, Rig

STATUS_TABLE = "moments_sync_participant_status"
QUARANTINE_TABLE = "moments_sync_quarantine"


def _meta(result: dg.ExecuteInProcessResult, name: str, step: str) -> dict[str, Any]:
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey([name, step])
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_sample_audiences_end_to_end(sample_rig: Rig) -> None:
    # The small, clean mirror sample has its own end-to-end test (tests/e2e/test_mirror.py).
    # The daily-partitioned sample is backfilled by partition range (tests/e2e/test_backfill.py).
    audiences = [
        a
        for a in SAMPLE_AUDIENCES.values()
        if a.membership is Membership.ADD and a.partition is None
    ]
    result = sample_rig.materialize(audiences)
    assert result.success

    checks = result.get_asset_check_evaluations()
    assert len(checks) == 5 * len(audiences)  # four on the flow report, one on participants
    assert [c.check_name for c in checks if not c.passed] == []
    assert sample_rig.inspect("merges") == []

    warehouse = connect_warehouse(sample_rig.warehouse_url)
    try:
        for audience in audiences:
            name, campaign = audience.name, audience.flow.campaign_id
            source = _meta(result, name, "source")
            prepared = _meta(result, name, "participants")
            quarantine = _meta(result, name, "quarantine")
            sync = _meta(result, name, "flow_sync")
            report = _meta(result, name, "flow_report")

            # Every input row is in exactly one participant or in quarantine.
            rows = warehouse.fetch_all(f'SELECT count(*) FROM "{name}__source_snapshot"')[0][0]
            assert source["moments/rows"] == rows > 100
            assert quarantine["moments/quarantined"] > 0  # the samples are messy on purpose
            assert (
                sum(quarantine["moments/quarantined_by_reason"].values())
                == (quarantine["moments/quarantined"])
            )

            # People refused right before sending (another audience of this run sent one of
            # their identifiers for another profile) are quarantined, never sent.
            refused = sync["moments/refused_at_sync"]
            sent_people = prepared["moments/participants"] - refused

            # The persisted record accounts for every input row: the rows behind the accepted
            # people plus the ledger's quarantine record (preparation's and the engine's).
            statuses = Counter(
                status
                for (status,) in warehouse.fetch_all(
                    f"SELECT status FROM {STATUS_TABLE} WHERE campaign_id = ? AND audience = ?",
                    [campaign, name],
                )
            )
            assert statuses == Counter({"ACCEPTED": sent_people})
            accepted_keys = {
                key
                for (key,) in warehouse.fetch_all(
                    f"SELECT person_key FROM {STATUS_TABLE} WHERE audience = ?", [name]
                )
            }
            participants = _tables.read_table(
                warehouse,
                f"{name}__participants",
                json_columns=_tables.PARTICIPANTS_JSON_COLUMNS,
            )
            rows_sent = sum(
                len(r)
                for k, r in zip(
                    participants["person_key"], participants["source_rows"], strict=True
                )
                if k in accepted_keys
            )
            (quarantined_rows,) = warehouse.fetch_all(
                f"SELECT count(*) FROM {QUARANTINE_TABLE} WHERE audience = ?", [name]
            )[0]
            assert rows_sent + quarantined_rows == rows
            assert report["moments/quarantined"] == quarantined_rows
            assert report["moments/accepted"] == sent_people
            assert report["moments/by_status"] == {"ACCEPTED": sent_people}
            assert len(sync["moments/operation_ids"]) == sync["moments/sent_requests"] >= 1
            by_callback, by_polling = (
                sync["moments/reports_by_callback"],
                sync["moments/reports_by_polling"],
            )
            if sample_rig.callbacks:
                assert (by_callback, by_polling) == (sync["moments/sent_requests"], 0)
            else:
                assert (by_callback, by_polling) == (0, sync["moments/sent_requests"])
            assert sync["moments/held_batches"] == []

            # Each person is in the flow exactly once.
            profiles = sample_rig.inspect(f"flows/{campaign}/participants")
            ids = [p["id"] for p in profiles]
            assert len(ids) == len(set(ids)) == sent_people
        # The samples were built to share people across audiences: in one run, the audience
        # synced later meets identifiers the earlier ones just sent for other profiles.
        assert sum(_meta(result, a.name, "flow_sync")["moments/refused_at_sync"] for a in audiences)
    finally:
        warehouse.close()

    # No secret in any event of the run.
    assert API_KEY not in repr(result.all_events)

    # The identity ledger models profiles: however the audiences key their people (customer id,
    # email, phone), an identifier is recorded under exactly one profile anchor.
    warehouse = connect_warehouse(sample_rig.warehouse_url)
    try:
        identities = prior_identities_frame(SqlLedgerStore(warehouse))
    finally:
        warehouse.close()
    assert len(identities) > 0
    anchors_per_identifier = identities.groupby(["kind", "identifier"])["person_key"].nunique()
    assert anchors_per_identifier.max() == 1
    # The audiences do share people: some identifiers were recorded under another audience's key.
    email_keyed = identities["person_key"].str.startswith("EMAIL:")
    assert (~email_keyed & (identities["kind"] == "EMAIL")).any()

    # Re-materializing sends nothing new and keeps every check green.
    requests_before = sample_rig.add_requests()
    again = sample_rig.materialize(audiences)
    assert again.success
    assert sample_rig.add_requests() == requests_before
    assert all(c.passed for c in again.get_asset_check_evaluations())
    for audience in audiences:
        assert _meta(again, audience.name, "flow_sync")["moments/sent_requests"] == 0
    assert sample_rig.inspect("merges") == []
