"""The asset factory: one audience definition in, three thin multi-assets out.

Each asset body is glue: it opens the resources, calls the plain library (warehouse, identity,
sync), and turns the answer into metadata and check results (``_report``). Ops per audience:

- ``<audience>__source``: snapshots the source rows into a warehouse table;
- ``<audience>__prepare``: identity preparation, writing the participants, quarantine and
  dropped-values tables, with the row accounting check on what they record;
- ``<audience>__sync``: the exactly-once send and the final statuses (flow_sync, flow_report and
  the asset checks), or with run config ``dry_run: true`` a preview that calls nothing.
"""

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext
from pydantic import Field

from moments_pipeline.config import AudienceConfig
from moments_pipeline.dagster import _accounting, _report, _tables
from moments_pipeline.dagster import _metadata as md
from moments_pipeline.dagster._resources import MomentsResource, WarehouseResource
from moments_pipeline.dagster._specs import AudienceSpecs, build_audience_specs
from moments_pipeline.identity import prepare_audience, to_flow_participants
from moments_pipeline.sync import (
    MomentsFlowDestination,
    SqlLedgerStore,
    SyncEngine,
    SyncOptions,
    SyncParticipant,
    SyncResult,
    ledger_callback_handler,
    prior_identities_frame,
    read_audience_source,
    source_problems,
)
from moments_pipeline.warehouse import UnsafeQueryError, Warehouse, WarehouseError

#: Partition key the engine records for unpartitioned audiences.
UNPARTITIONED = ""


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


def build_audience_assets(audience: AudienceConfig) -> list[dg.AssetsDefinition]:
    """Build the assets (and checks) of one audience.

    Args:
        audience: A validated audience definition.

    Returns:
        Three assets definitions (source, prepare, sync), five assets in all.
    """
    specs = build_audience_specs(audience)
    return [_source_asset(specs), _prepare_asset(specs), _sync_asset(specs)]


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


def _source_asset(specs: AudienceSpecs) -> dg.AssetsDefinition:
    audience, tables = specs.audience, specs.tables
    connection = audience.source.connection

    @dg.multi_asset(name=specs.op_name("source"), specs=[specs.source])
    def _source(context: AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[Any]:
        # Read through the connection the audience names; the snapshot goes to the ledger's
        # warehouse, where the next steps read it.
        with warehouse.open() as wh, warehouse.open_source(connection, wh) as source:
            frame = _read_source(source, audience)
            # Through the tables module: a source on another backend may hold text the ledger's
            # warehouse cannot store as is (NUL in PostgreSQL TEXT).
            _tables.write_table(wh, tables.source_snapshot, frame, json_columns=())
        yield dg.MaterializeResult(
            asset_key=specs.source.key,
            metadata={
                "dagster/row_count": len(frame),
                "dagster/column_schema": _report.table_schema(frame),
                md.key("rows"): len(frame),
                md.key("warehouse"): warehouse.redacted_url,
                md.key("source_connection"): connection,
                md.key("source_warehouse"): warehouse.redacted_source_url(connection),
                md.key("snapshot_table"): tables.source_snapshot,
            },
        )

    return _source


def _prepare_asset(specs: AudienceSpecs) -> dg.AssetsDefinition:
    audience, tables = specs.audience, specs.tables

    @dg.multi_asset(
        name=specs.op_name("prepare"),
        specs=[specs.participants, specs.quarantine],
        check_specs=list(specs.prepare_checks),
    )
    def _prepare(context: AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[Any]:
        with warehouse.open() as wh:
            frame = wh.read_table(tables.source_snapshot)
            ledger = SqlLedgerStore(wh)
            ledger.ensure_schema()
            prior = prior_identities_frame(ledger)
            prepared = prepare_audience(frame, audience, prior_identities=prior)
            bodies = to_flow_participants(prepared.participants, audience)
            _tables.write_table(
                wh,
                tables.participants,
                _report.with_bodies(prepared, bodies),
                json_columns=_tables.PARTICIPANTS_JSON_COLUMNS,
            )
            _tables.write_table(
                wh,
                tables.quarantine,
                prepared.quarantine,
                json_columns=_tables.QUARANTINE_JSON_COLUMNS,
            )
            _tables.write_table(
                wh,
                tables.dropped_values,
                prepared.dropped_values,
                json_columns=_tables.DROPPED_VALUES_JSON_COLUMNS,
            )
            # The accounting is checked on what the tables now hold, not on what was meant.
            recorded = _accounting.RecordedRows.collect(wh, specs)
        yield dg.MaterializeResult(
            asset_key=specs.participants.key,
            metadata={
                **_report.participants_metadata(len(frame), prepared.participants),
                **_accounting.accounting_metadata(recorded, tables.dropped_values),
                md.key("dropped_sample"): _accounting.dropped_sample(prepared.dropped_values),
            },
            check_results=[_accounting.accounting_check(specs, recorded)],
        )
        yield dg.MaterializeResult(
            asset_key=specs.quarantine.key,
            metadata=_report.quarantine_metadata(prepared.quarantine),
        )

    return _prepare


def _sync_asset(specs: AudienceSpecs) -> dg.AssetsDefinition:
    audience, tables = specs.audience, specs.tables

    @dg.multi_asset(
        name=specs.op_name("sync"),
        specs=[specs.flow_sync, specs.flow_report],
        check_specs=list(specs.checks),
        # Subsettable so that every output is optional: a dry run materializes nothing (it only
        # records an observation), and selecting one of the two assets is honoured.
        can_subset=True,
    )
    def _sync(
        context: AssetExecutionContext,
        config: SyncRunConfig,
        warehouse: WarehouseResource,
        moments: MomentsResource,
    ) -> Iterator[Any]:
        with warehouse.open() as wh:
            participants = _tables.read_table(
                wh, tables.participants, json_columns=_tables.PARTICIPANTS_JSON_COLUMNS
            )
            quarantine = _tables.read_table(
                wh, tables.quarantine, json_columns=_tables.QUARANTINE_JSON_COLUMNS
            )
            to_send = _report.sync_participants(participants)
            ledger = SqlLedgerStore(wh)
            ledger.ensure_schema()
            if config.dry_run:
                delivered = ledger.delivered_person_keys(audience.flow.campaign_id)
                yield _report.dry_run_observation(
                    specs, to_send, delivered, quarantine, config.preview_rows
                )
                return
            result = asyncio.run(
                _run_engine(
                    audience, moments, ledger, to_send, quarantine, config, context.run.run_id
                )
            )
            statuses = ledger.statuses(audience.flow.campaign_id, [p.person_key for p in to_send])
            evidence = _report.SentEvidence.collect(
                ledger, audience, UNPARTITIONED, participants, quarantine
            )
        selected = context.selected_asset_keys
        if specs.flow_sync.key in selected:
            yield dg.MaterializeResult(
                asset_key=specs.flow_sync.key,
                metadata=_report.sync_metadata(result, moments.describe()),
            )
        if specs.flow_report.key in selected:
            checks = _report.check_results(specs, statuses, result, evidence)
            wanted = {k.name for k in context.selected_asset_check_keys}
            yield dg.MaterializeResult(
                asset_key=specs.flow_report.key,
                metadata=_report.report_metadata(
                    statuses, quarantine, result, ledger.table_names()["participant_status"]
                ),
                check_results=[c for c in checks if c.check_name in wanted],
            )

    return _sync


async def _run_engine(
    audience: AudienceConfig,
    moments: MomentsResource,
    ledger: SqlLedgerStore,
    participants: list[SyncParticipant],
    quarantine: pd.DataFrame,
    config: SyncRunConfig,
    run_id: str,
) -> SyncResult:
    options = SyncOptions(
        report_deadline_s=audience.report.deadline_s,
        resend_ambiguous=config.resend_ambiguous,
        max_concurrent_sends=moments.max_in_flight,
        lease_wait_s=config.lease_wait_s,
    )
    # With a receiver configured, Infobip POSTs each report to it (keyed by the batch id in
    # callbackData) and the engine polls only for what has not arrived: report GETs share the
    # account's 10 requests/s with the sends.
    server = moments.callback_server(ledger_callback_handler(ledger))
    with contextlib.ExitStack() as stack:
        notify_url = stack.enter_context(server).notify_url if server is not None else None
        async with moments.get_client() as client:
            destination = MomentsFlowDestination(client, notify_url=notify_url)
            engine = SyncEngine(destination, ledger, options=options)
            return await engine.run(
                run_id=run_id,
                audience=audience.name,
                partition_key=UNPARTITIONED,
                campaign_id=audience.flow.campaign_id,
                participants=participants,
                quarantine=_report.quarantine_rows(audience.name, UNPARTITIONED, quarantine),
            )
