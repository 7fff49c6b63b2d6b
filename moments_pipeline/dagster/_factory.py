"""The asset factory: one audience definition in, three thin multi-assets and two checks out.

Each asset body is one call of its step in ``_steps`` (which opens the resources, calls the
plain library and yields the results); the checks are definitions of their own (``_checks``),
evaluated on what the steps recorded, so executing a check never runs a step. Ops per audience:

- ``<audience>__source``: snapshots the source rows into a warehouse table;
- ``<audience>__prepare``: identity preparation, writing the participants, quarantine and
  dropped-values tables;
- ``<audience>__sync``: the exactly-once send and the final statuses (flow_sync and
  flow_report), or with run config ``dry_run: true`` a preview that calls nothing;
- ``<audience>__prepare_checks`` (blocking) and ``<audience>__report_checks``: the checks.

A partitioned audience's ops are daily-partitioned with a single-run backfill policy: each step
works on every partition of its run, one after the other (``_partitions``).

Here too: the engine run and the mapping of its terminal errors to a step failure.
"""

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext

from moments_pipeline.config import AudienceConfig
from moments_pipeline.dagster import _metadata as md
from moments_pipeline.dagster import _partitions, _steps, _tables
from moments_pipeline.dagster._checks import build_audience_checks
from moments_pipeline.dagster._removals import build_membership_assets, with_plan_first
from moments_pipeline.dagster._resources import ACCOUNT_POOL, MomentsResource, WarehouseResource
from moments_pipeline.dagster._specs import AudienceSpecs, build_audience_specs
from moments_pipeline.dagster._steps import SyncRunConfig
from moments_pipeline.sync import (
    DestinationStoppedError,
    MomentsFlowDestination,
    ProgressCallback,
    SqlLedgerStore,
    SyncEngine,
    SyncOptions,
    SyncParticipant,
    SyncResult,
    SyncStoppedError,
    ledger_callback_handler,
)


def build_audience_assets(
    audience: AudienceConfig,
    *,
    source_file: Path | None = None,
    source_line: int | None = None,
    warehouse_kinds: Mapping[str, str] | None = None,
) -> list[dg.AssetsDefinition]:
    """Build the assets and the asset checks of one audience.

    Args:
        audience: A validated audience definition.
        source_file: Its YAML file (code references in the UI).
        source_line: The line of its ``name:`` in that file.
        warehouse_kinds: Connection name -> ``duckdb`` / ``postgres`` (asset kinds).

    Returns:
        Three assets definitions (source, prepare, sync: five assets in all), then two asset
        checks definitions (prepare checks, report checks).
    """
    specs = build_audience_specs(
        audience,
        source_file=source_file,
        source_line=source_line,
        warehouse_kinds=warehouse_kinds,
    )
    specs = with_plan_first(specs)  # mirror membership: the sync waits for the guarded plan
    return [
        _source_asset(specs),
        _prepare_asset(specs),
        _sync_asset(specs),
        *build_audience_checks(specs),
        *build_membership_assets(specs),
    ]


def _partitioning(specs: AudienceSpecs) -> dict[str, Any]:
    """Daily partitions and the one-run backfill policy of a partitioned audience."""
    return {
        "partitions_def": _partitions.partitions_def(specs.audience),
        "backfill_policy": _partitions.backfill_policy(specs.audience),
    }


def _source_asset(specs: AudienceSpecs) -> dg.AssetsDefinition:
    @dg.multi_asset(name=specs.op_name("source"), specs=[specs.source], **_partitioning(specs))
    def _source(context: AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[Any]:
        partitions = _partitions.run_partitions(context, specs.audience)
        yield _steps.snapshot_source(specs, warehouse, partitions)

    return _source


def _prepare_asset(specs: AudienceSpecs) -> dg.AssetsDefinition:
    @dg.multi_asset(
        name=specs.op_name("prepare"),
        specs=[specs.participants, specs.quarantine],
        **_partitioning(specs),
    )
    def _prepare(context: AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[Any]:
        partitions = _partitions.run_partitions(context, specs.audience)
        yield from _steps.prepare(specs, warehouse, partitions)

    return _prepare


def _sync_asset(specs: AudienceSpecs) -> dg.AssetsDefinition:
    @dg.multi_asset(
        name=specs.op_name("sync"),
        specs=[specs.flow_sync, specs.flow_report],
        # Subsettable so that every output is optional: a dry run materializes nothing (it only
        # records an observation), and selecting one of the two assets is honoured.
        can_subset=True,
        # One Dagster pool for the account's sending steps: caps how many run at once. The
        # request RATE across them (and across processes) is the shared pacing record's job.
        pool=ACCOUNT_POOL,
        **_partitioning(specs),
    )
    def _sync(
        context: AssetExecutionContext,
        config: SyncRunConfig,
        warehouse: WarehouseResource,
        moments: MomentsResource,
    ) -> Iterator[Any]:
        yield from _steps.sync(specs, context, config, warehouse, moments, _engine_result)

    return _sync


def _engine_result(
    audience: AudienceConfig,
    moments: MomentsResource,
    ledger: SqlLedgerStore,
    participants: list[SyncParticipant],
    quarantine: pd.DataFrame,
    config: SyncRunConfig,
    run_id: str,
    partition: str,
    progress: ProgressCallback | None = None,
) -> SyncResult:
    """Run the engine on one partition to its result; a stopped sync becomes the step's failure."""
    try:
        return asyncio.run(
            _run_engine(
                audience,
                moments,
                ledger,
                participants,
                quarantine,
                config,
                run_id,
                partition,
                progress,
            )
        )
    except SyncStoppedError as exc:  # no flow_report: nothing in it would be final
        raise _stopped_failure(audience, exc) from None


def _stopped_failure(audience: AudienceConfig, exc: SyncStoppedError) -> dg.Failure:
    """The step's failure for a stopped sync: the message names the flow or the account problem.

    The engine's messages carry run ids, scopes, campaign ids and HTTP codes only, never a key.
    """
    metadata: dict[str, Any] = {
        md.key("stopped"): type(exc).__name__,
        md.key("campaign_id"): audience.flow.campaign_id,
    }
    if isinstance(exc, DestinationStoppedError):
        metadata[md.key("stopped_reason")] = exc.reason
        metadata[md.key("not_sent")] = exc.not_sent
    return dg.Failure(
        description=f"audience {audience.name!r}, flow {audience.flow.campaign_id}: {exc}",
        metadata=metadata,
    )


async def _run_engine(
    audience: AudienceConfig,
    moments: MomentsResource,
    ledger: SqlLedgerStore,
    participants: list[SyncParticipant],
    quarantine: pd.DataFrame,
    config: SyncRunConfig,
    run_id: str,
    partition: str,
    progress: ProgressCallback | None,
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
            engine = SyncEngine(destination, ledger, options=options, progress=progress)
            result = await engine.run(
                run_id=run_id,
                audience=audience.name,
                partition_key=partition,
                campaign_id=audience.flow.campaign_id,
                participants=participants,
                quarantine=_tables.quarantine_rows(audience.name, partition, quarantine),
            )
        if server is not None:  # reports the receiver refused never reached the engine
            result.callbacks_rejected += server.receiver.stats.rejected
            result.callbacks_unknown += server.receiver.stats.unknown
    return result
