"""The work of each asset step, called with its resources (as ``DagsterDltResource.run`` is).

Each function opens the resources, calls the plain library (warehouse, identity, sync) and
yields the step's results, so that each asset body in ``_factory`` is one call. Checks are not
evaluated here: they are steps of their own (``_checks``), reading what these steps record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import dagster as dg
import pandas as pd
from pydantic import Field

from moments_pipeline.config import AudienceConfig
from moments_pipeline.dagster import _accounting, _tables
from moments_pipeline.dagster import _asset_metadata as meta
from moments_pipeline.dagster import _metadata as md
from moments_pipeline.dagster._resources import MomentsResource, WarehouseResource
from moments_pipeline.dagster._specs import AudienceSpecs
from moments_pipeline.identity import prepare_audience, to_flow_participants
from moments_pipeline.sync import (
    SqlLedgerStore,
    SyncParticipant,
    SyncResult,
    prior_identities_frame,
    read_audience_source,
    source_problems,
)
from moments_pipeline.warehouse import UnsafeQueryError, Warehouse, WarehouseError

#: ``(audience, moments, ledger, participants, quarantine, config, run_id) -> SyncResult``:
#: the engine run (``_factory._engine_result``, which maps a stopped sync to a step failure).
EngineRun = Callable[..., SyncResult]


class SyncRunConfig(dg.Config):
    """Run config of a ``<audience>__sync`` op.

    Attributes:
        dry_run: Compute and show what would be sent; call nothing and write no ledger row.
        resend_ambiguous: Re-send batches whose earlier send was ambiguous (may put someone
            through the flow twice; off unless an operator decides otherwise).
        preview_rows: Masked sample participants shown by a dry run.
        lease_wait_s: Seconds to wait while another run holds the ledger's sync lease (syncs
            of one account take turns so that none can cause a merge); 0 fails at once.
    """

    dry_run: bool = Field(default=False, description="Preview only: no API call, no ledger row")
    resend_ambiguous: bool = Field(
        default=False, description="Re-send ambiguous batches (risk: someone enters twice)"
    )
    preview_rows: int = Field(default=5, ge=0, le=100)
    lease_wait_s: float = Field(
        default=300.0,
        ge=0,
        description="How long to wait for another run syncing to the same ledger (0: fail now)",
    )


def _read_source(warehouse: Warehouse, audience: AudienceConfig) -> pd.DataFrame:
    # Every problem at once and before any row is read: a typo'd column, a refused query.
    problems = source_problems(warehouse, audience)
    if problems:
        raise dg.Failure(
            description=f"audience {audience.name!r}: the source cannot be read:\n"
            + "\n".join(f"- {p}" for p in problems),
            metadata={md.key("source_problems"): dg.MetadataValue.json(problems)},
        )
    try:
        return read_audience_source(warehouse, audience)
    except (UnsafeQueryError, WarehouseError) as exc:
        raise dg.Failure(description=f"audience {audience.name!r}: {exc}") from None


def snapshot_source(specs: AudienceSpecs, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Read the audience's source and store it as ``<audience>__source_snapshot``."""
    audience, tables = specs.audience, specs.tables
    connection = audience.source.connection
    # Read through the connection the audience names; the snapshot goes to the ledger's
    # warehouse, where the next steps read it.
    with warehouse.open() as wh, warehouse.open_source(connection, wh) as source:
        frame = _read_source(source, audience)
        # Through the tables module: a source on another backend may hold text the ledger's
        # warehouse cannot store as is (NUL in PostgreSQL TEXT).
        _tables.write_table(wh, tables.source_snapshot, frame, json_columns=())
    return dg.MaterializeResult(
        asset_key=specs.source.key,
        metadata=meta.source_metadata(
            frame,
            warehouse=warehouse.redacted_url,
            source_connection=connection,
            source_warehouse=warehouse.redacted_source_url(connection),
            snapshot_table=tables.source_snapshot,
        ),
    )


def prepare(specs: AudienceSpecs, warehouse: WarehouseResource) -> Iterator[dg.MaterializeResult]:
    """Identity preparation: write the participants, quarantine and dropped-values tables."""
    audience, tables = specs.audience, specs.tables
    with warehouse.open() as wh:
        frame = wh.read_table(tables.source_snapshot)
        ledger = SqlLedgerStore(wh)
        ledger.ensure_schema()
        prepared = prepare_audience(
            frame, audience, prior_identities=prior_identities_frame(ledger)
        )
        bodies = to_flow_participants(prepared.participants, audience)
        for table, data, json_columns in (
            (
                tables.participants,
                _tables.with_bodies(prepared, bodies),
                _tables.PARTICIPANTS_JSON_COLUMNS,
            ),
            (tables.quarantine, prepared.quarantine, _tables.QUARANTINE_JSON_COLUMNS),
            (tables.dropped_values, prepared.dropped_values, _tables.DROPPED_VALUES_JSON_COLUMNS),
        ):
            _tables.write_table(wh, table, data, json_columns=json_columns)
        # The numbers are those the tables now hold, not those that were meant.
        recorded = _accounting.RecordedRows.collect(wh, specs)
    yield dg.MaterializeResult(
        asset_key=specs.participants.key,
        metadata={
            **meta.participants_metadata(len(frame), prepared.participants),
            **_accounting.accounting_metadata(recorded, tables.dropped_values),
            md.key("dropped_sample"): _accounting.dropped_sample(prepared.dropped_values),
        },
    )
    yield dg.MaterializeResult(
        asset_key=specs.quarantine.key,
        metadata=meta.quarantine_metadata(prepared.quarantine),
    )


def sync(
    specs: AudienceSpecs,
    context: dg.AssetExecutionContext,
    config: SyncRunConfig,
    warehouse: WarehouseResource,
    moments: MomentsResource,
    run_engine: EngineRun,
) -> Iterator[dg.MaterializeResult | dg.AssetObservation]:
    """Send the stored participants through the ledger and record the final statuses.

    With ``config.dry_run`` this observes what would be sent and calls nothing. Only the
    selected assets (flow_sync, flow_report) are materialized.
    """
    audience, tables = specs.audience, specs.tables
    with warehouse.open() as wh:
        participants = _tables.read_table(
            wh, tables.participants, json_columns=_tables.PARTICIPANTS_JSON_COLUMNS
        )
        quarantine = _tables.read_table(
            wh, tables.quarantine, json_columns=_tables.QUARANTINE_JSON_COLUMNS
        )
        to_send: list[SyncParticipant] = _tables.sync_participants(participants)
        ledger = SqlLedgerStore(wh)
        ledger.ensure_schema()
        if config.dry_run:
            delivered = ledger.delivered_person_keys(audience.flow.campaign_id)
            yield meta.dry_run_observation(
                specs, to_send, delivered, quarantine, config.preview_rows
            )
            return
        result = run_engine(
            audience, moments, ledger, to_send, quarantine, config, context.run.run_id
        )
        statuses = ledger.statuses(audience.flow.campaign_id, [p.person_key for p in to_send])
    selected = context.selected_asset_keys
    if specs.flow_sync.key in selected:
        yield dg.MaterializeResult(
            asset_key=specs.flow_sync.key,
            metadata=meta.sync_metadata(result, moments.describe()),
        )
    if specs.flow_report.key in selected:
        yield dg.MaterializeResult(
            asset_key=specs.flow_report.key,
            metadata=meta.report_metadata(
                statuses, quarantine, result, ledger.table_names()["participant_status"]
            ),
        )
