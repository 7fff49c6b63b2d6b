"""Dagster assets for Moments Forms: the catalog, one asset per form source, and their checks.

- ``forms/catalog``: every form (get-forms, paged) fetched whole (get-form), written to
  ``moments_forms`` and ``moments_form_fields``; ``moments/forms_added``, ``_removed``,
  ``_changed`` compare it with the tables of the previous materialization.
- ``forms/<source>``: one form source (``<audiences>/forms/*.yaml``): submissions, or view
  increments for a ``views: true`` source, through ``sync.run_form_source`` (exactly once, the
  identity rules, the account's rate budget). Writes ``form_<source>__results`` (one row per
  row handed to the engine: send key, state, reason), ``form_<source>__quarantine`` and
  ``form_<source>__dropped``. A form not ACTIVE, a refused key or a mapping that does not fit
  the form fails the step with the engine's message (``dg.Failure``).
- Checks (steps of their own, reading the stored tables and the ledger only, never sending):
  ``rows_accounted_for`` (no row twice, none both sent and quarantined), ``nothing_held``
  (warn), ``no_identifier_under_two_profiles`` (account-wide, the ledger's view).

Specs take ``partitions_def`` later (as audiences do): the engine already keys sends by
partition (``partition_key``); the asset passes ``""`` until a form source can declare one.
"""

import asyncio
from collections.abc import Iterable, Iterator
from typing import Any

import dagster as dg
import pandas as pd

from moments_pipeline.config import FormSourceConfig
from moments_pipeline.dagster import _metadata as md
from moments_pipeline.dagster._catalog import is_dry_run
from moments_pipeline.dagster._resources import MomentsResource, WarehouseResource
from moments_pipeline.dagster._tables import read_table, write_table
from moments_pipeline.sync import (
    FormRun,
    SqlLedgerStore,
    SyncOptions,
    SyncStoppedError,
    catalog_changes,
    catalog_frames,
    read_form_catalog,
    run_form_source,
)

GROUP = "forms"
FORMS_TABLE = "moments_forms"
FIELDS_TABLE = "moments_form_fields"
CATALOG_KEY = dg.AssetKey(["forms", "catalog"])
_RESULT_COLUMNS = ["row_id", "send_key", "state", "reason"]


def source_tables(name: str) -> dict[str, str]:
    """The warehouse tables a form source writes."""
    return {
        "results": f"form_{name}__results",
        "quarantine": f"form_{name}__quarantine",
        "dropped": f"form_{name}__dropped",
    }


def source_key(name: str) -> dg.AssetKey:
    """The asset key of a form source."""
    return dg.AssetKey(["forms", name])


def _catalog_asset() -> dg.AssetsDefinition:
    @dg.asset(
        key=CATALOG_KEY,
        group_name=GROUP,
        kinds={"infobip"},
        description="Every Moments form and its fields (get-forms paged, get-form each).",
    )
    def _catalog(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, moments: MomentsResource
    ) -> dg.MaterializeResult:
        async def read() -> list[dict[str, Any]]:
            async with moments.get_client() as client:
                return await read_form_catalog(client)

        forms = asyncio.run(read())
        forms_frame, fields_frame = catalog_frames(forms)
        with warehouse.open() as wh:
            previous = (
                read_table(wh, FORMS_TABLE, json_columns=())
                if wh.table_exists(FORMS_TABLE)
                else None
            )
            write_table(wh, FORMS_TABLE, forms_frame, json_columns=())
            write_table(wh, FIELDS_TABLE, fields_frame, json_columns=())
        changes = catalog_changes(previous, forms_frame)
        return dg.MaterializeResult(
            metadata={
                md.key("forms"): len(forms_frame),
                md.key("form_fields"): len(fields_frame),
                md.key("forms_by_status"): md.counts(
                    forms_frame["form_status"].astype(str).value_counts().to_dict()
                ),
                md.key("forms_added"): dg.MetadataValue.json(changes["added"]),
                md.key("forms_removed"): dg.MetadataValue.json(changes["removed"]),
                md.key("forms_changed"): dg.MetadataValue.json(changes["changed"]),
                md.key("tables"): dg.MetadataValue.json([FORMS_TABLE, FIELDS_TABLE]),
            }
        )

    return _catalog


def _results_frame(run: FormRun) -> pd.DataFrame:
    return pd.DataFrame(
        [(r.row_id, r.send_key, r.state, r.reason) for r in run.result.rows],
        columns=_RESULT_COLUMNS,
        dtype=object,
    )


def _source_asset(source: FormSourceConfig) -> dg.AssetsDefinition:
    tables = source_tables(source.name)
    what = "view increments" if source.views else "submissions"

    @dg.asset(
        key_prefix=["forms"],
        name=source.name,
        group_name=GROUP,
        kinds={"infobip"},
        description=source.description or f"{what} of form {source.form.id}, each exactly once",
        # Optional so that a run tagged as a dry run records an observation, not a
        # materialization of submissions it never made.
        output_required=False,
    )
    def _send(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, moments: MomentsResource
    ) -> Iterator[Any]:
        if is_dry_run(context):
            yield dg.AssetObservation(
                asset_key=context.asset_key,
                metadata={md.key("dry_run"): True, md.key("form_id"): source.form.id},
            )
            return
        with warehouse.open() as wh, warehouse.open_source(source.source.connection, wh) as src:
            ledger = SqlLedgerStore(wh)
            ledger.ensure_schema()

            async def go() -> FormRun:
                async with moments.get_client() as client:
                    return await run_form_source(
                        client,
                        ledger,
                        src,
                        source,
                        # A dead run's lease frees itself within seconds (6 s TTL).
                        options=SyncOptions(
                            max_concurrent_sends=moments.max_in_flight, lease_wait_s=300.0
                        ),
                    )

            try:
                run = asyncio.run(go())
            except SyncStoppedError as exc:
                raise dg.Failure(
                    description=f"form source {source.name!r} (form {source.form.id}): {exc}",
                    metadata={md.key("stopped"): type(exc).__name__},
                ) from None
            results = _results_frame(run)
            write_table(wh, tables["results"], results, json_columns=())
            write_table(wh, tables["quarantine"], run.quarantine, json_columns=())
            write_table(wh, tables["dropped"], run.dropped_values, json_columns=())
        yield dg.MaterializeResult(metadata=_source_metadata(run, results))

    return _send


def _source_metadata(run: FormRun, results: pd.DataFrame) -> dict[str, Any]:
    result = run.result
    counts = result.counts
    rejected = {
        k.split(":", 1)[1]: v for k, v in result.by_reason.items() if k.startswith("REJECTED:")
    }
    quarantine = run.quarantine
    return {
        md.key("form_id"): run.source.form.id,
        md.key("rows_in"): run.rows_in,
        md.key("submitted"): counts.get("SUBMITTED", 0),
        md.key("sent_this_run"): result.sent_this_run,
        md.key("rejected"): counts.get("REJECTED", 0),
        md.key("rejected_by_reason"): md.counts(rejected),
        md.key("quarantined"): len(quarantine),
        md.key("quarantined_by_reason"): md.counts(
            quarantine["reason"].astype(str).value_counts().to_dict() if len(quarantine) else {}
        ),
        md.key("quarantine_sample"): md.markdown_table(
            md.masked_records(quarantine), ["row_id", "reason", "detail"]
        ),
        md.key("skipped"): counts.get("SKIPPED", 0),
        md.key("refused_at_sync"): counts.get("REFUSED_AT_SYNC", 0),
        md.key("held"): counts.get("HELD", 0),
        md.key("not_sent"): counts.get("NOT_SENT", 0),
        md.key("dropped"): len(run.dropped_values),
        md.key("requests"): result.requests,
        md.key("duration_s"): round(result.duration_s, 3),
        md.key("per_s"): round(result.sent_this_run / result.duration_s, 2)
        if result.duration_s > 0
        else 0.0,
    }


def _source_checks(source: FormSourceConfig) -> dg.AssetChecksDefinition:
    key = source_key(source.name)
    tables = source_tables(source.name)
    specs = [
        dg.AssetCheckSpec("rows_accounted_for", asset=key, blocking=False),
        dg.AssetCheckSpec("nothing_held", asset=key),
        dg.AssetCheckSpec("no_identifier_under_two_profiles", asset=key),
    ]

    @dg.multi_asset_check(specs=specs, name=f"form_{source.name}__checks", can_subset=True)
    def _checks(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> Iterable[dg.AssetCheckResult]:
        wanted = {k.name for k in context.selected_asset_check_keys}
        with warehouse.open() as wh:
            have = all(wh.table_exists(t) for t in (tables["results"], tables["quarantine"]))
            results = read_table(wh, tables["results"], json_columns=()) if have else None
            quarantine = read_table(wh, tables["quarantine"], json_columns=()) if have else None
            conflicts = (
                SqlLedgerStore(wh).identifier_conflicts(10)
                if wh.table_exists("moments_sync_outbox")
                else []
            )
        if results is None or quarantine is None:
            for name in wanted:
                yield dg.AssetCheckResult(
                    check_name=name,
                    asset_key=key,
                    passed=False,
                    metadata={md.key("reason"): "nothing recorded yet: materialize the source"},
                )
            return
        if "rows_accounted_for" in wanted:
            ids = list(results["row_id"].astype(str)) + list(quarantine["row_id"].astype(str))
            twice = sorted({i for i in ids if ids.count(i) > 1})
            yield dg.AssetCheckResult(
                check_name="rows_accounted_for",
                asset_key=key,
                passed=not twice,
                metadata={
                    md.key("rows"): len(ids),
                    md.key("rows_twice"): dg.MetadataValue.json(twice[:10]),
                },
            )
        if "nothing_held" in wanted:
            held = int((results["state"] == "HELD").sum())
            yield dg.AssetCheckResult(
                check_name="nothing_held",
                asset_key=key,
                passed=held == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={md.key("held"): held},
            )
        if "no_identifier_under_two_profiles" in wanted:
            yield dg.AssetCheckResult(
                check_name="no_identifier_under_two_profiles",
                asset_key=key,
                passed=not conflicts,
                metadata={
                    md.key("conflicts"): len(conflicts),
                    md.key("sample"): dg.MetadataValue.json(
                        [f"{kind} {md.mask_identifier(value)}" for kind, value in conflicts]
                    ),
                },
            )

    return _checks


def form_schedules(sources: Iterable[FormSourceConfig]) -> list[dg.ScheduleDefinition]:
    """A schedule per form source with ``schedule:`` (its asset, one run a tick)."""
    out = []
    for source in sources:
        schedule = source.schedule
        if schedule is None:
            continue
        out.append(
            dg.ScheduleDefinition(
                name=f"form_{source.name}__schedule",
                cron_schedule=schedule.cron,
                execution_timezone=schedule.timezone,
                target=dg.AssetSelection.assets(source_key(source.name)),
                default_status=dg.DefaultScheduleStatus[schedule.default_status],
                description=f"Run form source {source.name!r} at `{schedule.cron}`.",
            )
        )
    return out


def build_form_definitions(
    sources: Iterable[FormSourceConfig],
) -> tuple[list[dg.AssetsDefinition], list[dg.AssetChecksDefinition]]:
    """The catalog asset, one asset per form source, and each source's checks."""
    assets = [_catalog_asset()]
    checks = []
    for source in sources:
        assets.append(_source_asset(source))
        checks.append(_source_checks(source))
    return assets, checks
