"""The work of each asset step, called with its resources (as ``DagsterDltResource.run`` is).

Each function opens the resources, calls the plain library (warehouse, identity, sync) and
yields the step's results, so that each asset body in ``_factory`` is one call. Checks are not
evaluated here: they are steps of their own (``_checks``), reading what these steps record.
Each step works on the partitions of its run in turn (``[""]`` when unpartitioned), writing
only their rows (``_partitions``); a range's metadata is the total plus each partition's counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import dagster as dg
import pandas as pd
from pydantic import Field

from moments_pipeline.config import AudienceConfig
from moments_pipeline.dagster import _accounting, _catalog, _partitions, _tables
from moments_pipeline.dagster import _asset_metadata as meta
from moments_pipeline.dagster import _metadata as md
from moments_pipeline.dagster._progress import ProgressLog
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

#: ``(audience, moments, ledger, participants, quarantine, config, run_id, partition) ->
#: SyncResult``: the engine run of one partition (``_factory._engine_result``, which maps a
#: stopped sync to a step failure).
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


def _read_source(warehouse: Warehouse, audience: AudienceConfig, partition: str) -> pd.DataFrame:
    # Every problem at once and before any row is read: a typo'd column, a refused query.
    problems = source_problems(warehouse, audience)
    if problems:
        raise dg.Failure(
            description=f"audience {audience.name!r}: the source cannot be read:\n"
            + "\n".join(f"- {p}" for p in problems),
            metadata={md.key("source_problems"): dg.MetadataValue.json(problems)},
        )
    try:
        return read_audience_source(warehouse, audience, partition)
    except (UnsafeQueryError, WarehouseError, ValueError) as exc:
        raise dg.Failure(description=f"audience {audience.name!r}: {exc}") from None


def snapshot_source(
    specs: AudienceSpecs, warehouse: WarehouseResource, partitions: Sequence[str]
) -> dg.MaterializeResult:
    """Read the audience's source (each partition's day) into ``<audience>__source_snapshot``."""
    audience, tables = specs.audience, specs.tables
    connection = audience.source.connection
    per_partition = {}
    # Read through the connection the audience names; the snapshot goes to the ledger's
    # warehouse, where the next steps read it.
    with warehouse.open() as wh, warehouse.open_source(connection, wh) as source:
        for partition in partitions:
            frame = _read_source(source, audience, partition)
            # Through the tables module: a source on another backend may hold text the
            # ledger's warehouse cannot store as is (NUL in PostgreSQL TEXT).
            _partitions.write_partition(
                wh, tables.source_snapshot, frame, partition, json_columns=()
            )
            per_partition[partition] = meta.source_metadata(
                frame,
                warehouse=warehouse.redacted_url,
                source_connection=connection,
                source_warehouse=warehouse.redacted_source_url(connection),
                snapshot_table=tables.source_snapshot,
            )
    return dg.MaterializeResult(
        asset_key=specs.source.key, metadata=_partitions.range_metadata(per_partition)
    )


def prepare(
    specs: AudienceSpecs, warehouse: WarehouseResource, partitions: Sequence[str]
) -> Iterator[dg.MaterializeResult]:
    """Identity preparation: write the participants, quarantine and dropped-values tables.

    Each partition is prepared from its own snapshot rows and replaces only its own rows.
    """
    audience, tables = specs.audience, specs.tables
    participants_meta, quarantine_meta = {}, {}
    with warehouse.open() as wh:
        ledger = SqlLedgerStore(wh)
        ledger.ensure_schema()
        # Nothing is sent during this step: the ledger's identities are read once for all days.
        prior = prior_identities_frame(ledger)
        for partition in partitions:
            frame = _partitions.read_partition(
                wh, tables.source_snapshot, partition, json_columns=()
            )
            prepared = prepare_audience(frame, audience, prior_identities=prior)
            bodies = to_flow_participants(prepared.participants, audience)
            for table, data, json_columns in (
                (
                    tables.participants,
                    _tables.with_bodies(prepared, bodies),
                    _tables.PARTICIPANTS_JSON_COLUMNS,
                ),
                (tables.quarantine, prepared.quarantine, _tables.QUARANTINE_JSON_COLUMNS),
                (
                    tables.dropped_values,
                    prepared.dropped_values,
                    _tables.DROPPED_VALUES_JSON_COLUMNS,
                ),
            ):
                _partitions.write_partition(wh, table, data, partition, json_columns=json_columns)
            # The numbers are those the tables now hold, not those that were meant.
            recorded = _accounting.RecordedRows.collect(wh, specs, partition)
            participants_meta[partition] = {
                **meta.participants_metadata(len(frame), prepared.participants),
                **_accounting.accounting_metadata(recorded, tables.dropped_values),
                md.key("dropped_sample"): _accounting.dropped_sample(prepared.dropped_values),
            }
            quarantine_meta[partition] = meta.quarantine_metadata(prepared.quarantine)
    yield dg.MaterializeResult(
        asset_key=specs.participants.key,
        metadata=_partitions.range_metadata(participants_meta),
    )
    yield dg.MaterializeResult(
        asset_key=specs.quarantine.key,
        metadata=_partitions.range_metadata(quarantine_meta),
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

    With ``config.dry_run``, or in a run tagged ``moments/dry_run=true``, this observes what
    would be sent and calls nothing. Only the selected assets (flow_sync, flow_report) are
    materialized.
    """
    audience, tables = specs.audience, specs.tables
    # The tag alone makes a dry run too: a run that says "dry run" never sends, whatever its
    # config (the dry-run job carries the tag; the CLI may launch it without its config).
    dry_run = config.dry_run or _catalog.is_dry_run(context)
    if dry_run:  # first, so that the runs list says so even if the step then fails
        _catalog.tag_dry_run(context)
    sync_meta, report_meta = {}, {}
    with warehouse.open() as wh:
        ledger = SqlLedgerStore(wh)
        ledger.ensure_schema()
        # Day after day, each an engine run of its own partition under the ledger's lease: a
        # person an earlier day delivered is not sent again.
        for partition in _partitions.run_partitions(context, audience):
            participants = _partitions.read_partition(
                wh, tables.participants, partition, json_columns=_tables.PARTICIPANTS_JSON_COLUMNS
            )
            quarantine = _partitions.read_partition(
                wh, tables.quarantine, partition, json_columns=_tables.QUARANTINE_JSON_COLUMNS
            )
            to_send: list[SyncParticipant] = _tables.sync_participants(participants)
            if dry_run:
                delivered = ledger.delivered_person_keys(audience.flow.campaign_id)
                yield meta.dry_run_observation(
                    specs, to_send, delivered, quarantine, config.preview_rows
                )
                continue
            if partition:  # a person of two days: never sent while the other send is unresolved
                to_send, quarantine = _partitions.hold_back_unresolved(
                    ledger, audience, partition, to_send, quarantine
                )
            result = run_engine(
                audience,
                moments,
                ledger,
                to_send,
                quarantine,
                config,
                context.run.run_id,
                partition,
                progress=ProgressLog(
                    context.log.info, f"{audience.name}{f' [{partition}]' if partition else ''}"
                ),
            )
            statuses = ledger.statuses(audience.flow.campaign_id, [p.person_key for p in to_send])
            sync_meta[partition] = meta.sync_metadata(result, moments.describe())
            report_meta[partition] = meta.report_metadata(
                statuses, quarantine, result, ledger.table_names()["participant_status"]
            )
    if dry_run:
        return
    selected = context.selected_asset_keys
    if specs.flow_sync.key in selected:
        yield dg.MaterializeResult(
            asset_key=specs.flow_sync.key, metadata=_partitions.range_metadata(sync_meta)
        )
    if specs.flow_report.key in selected:
        yield dg.MaterializeResult(
            asset_key=specs.flow_report.key, metadata=_partitions.range_metadata(report_meta)
        )
