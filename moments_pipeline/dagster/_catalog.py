"""What Dagster's catalog shows of an audience beyond its steps: kinds, code references, schedules.

- Kinds of the warehouse an asset lives in (``duckdb`` or ``postgres``, read from the resource's
  URLs at load time; a URL given as ``EnvVar`` is read from the environment for its scheme only).
- Code references (built by ``_specs`` from the file and line given here by the builder): every
  asset of an audience links to its YAML file and the line of its ``name:``.
- Schedules: an audience with ``schedule: {cron, timezone}`` gets a ``ScheduleDefinition`` of its
  group's assets (and their checks). A schedule rather than ``AutomationCondition.on_cron``: a
  sync must run at its tick whether or not anything upstream changed (on_cron waits for the
  dependencies to update after the tick, and the source asset has none to wait for), one tick is
  one run of the whole audience that the UI lists under Schedules with its own history, and it
  needs only the daemon, not the automation-condition sensor. A partitioned audience's tick asks
  for the last complete day.
- Dry runs: the run tag ``moments/dry_run=true`` (added by a dry sync step; a run that carries
  it is a dry run, whatever its config) and the ``dry_run_all_audiences`` job, whose name says
  what its runs are.

No I/O except reading the environment for a URL's scheme.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import dagster as dg

from moments_pipeline.config import LEDGER_CONNECTION, AudienceConfig
from moments_pipeline.dagster._resources import WarehouseResource
from moments_pipeline.warehouse import is_postgres_url

#: Run tag of every run that executed a sync step with ``dry_run: true``.
DRY_RUN_TAG = "moments/dry_run"
#: The job whose runs are dry runs of every audience (its name says so in the runs list).
DRY_RUN_JOB = "dry_run_all_audiences"
#: Kind of the Moments API, on the flow assets.
INFOBIP_KIND = "infobip"


def _url_value(url: str) -> str:
    # An EnvVar is a str holding the variable's name: its value is read only to tell the scheme.
    if isinstance(url, dg.EnvVar):
        return url.get_value() or ""
    return url


def warehouse_kind(url: str) -> str:
    """``postgres`` for a PostgreSQL URL or DSN, else ``duckdb`` (the only other engine)."""
    return "postgres" if is_postgres_url(_url_value(url)) else "duckdb"


def warehouse_kinds(warehouse: WarehouseResource) -> dict[str, str]:
    """Connection name -> kind, the ledger's own warehouse as ``LEDGER_CONNECTION``."""
    kinds = {LEDGER_CONNECTION: warehouse_kind(warehouse.url)}
    kinds |= {name: warehouse_kind(url) for name, url in (warehouse.sources or {}).items()}
    return kinds


def _schedule_requests(audience: AudienceConfig, partitions: dg.PartitionsDefinition | None) -> Any:
    def _evaluate(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest | dg.SkipReason]:
        tags = {"moments/audience": audience.name}
        if partitions is None:
            yield dg.RunRequest(tags=tags)
            return
        # The day that has just ended at the tick, in the partitions' own timezone.
        keys = partitions.get_partition_keys(current_time=context.scheduled_execution_time)
        key = keys[-1] if keys else None
        if key is None:
            yield dg.SkipReason(f"audience {audience.name!r}: no complete day yet")
            return
        yield dg.RunRequest(run_key=key, partition_key=key, tags=tags)

    return _evaluate


def audience_schedule(
    audience: AudienceConfig, partitions: dg.PartitionsDefinition | None = None
) -> dg.ScheduleDefinition | None:
    """The audience's schedule (None without ``schedule:``): its whole group, one run a tick."""
    schedule = audience.schedule
    if schedule is None:
        return None
    return dg.ScheduleDefinition(
        name=f"{audience.name}__schedule",
        cron_schedule=schedule.cron,
        execution_timezone=schedule.timezone,
        target=dg.AssetSelection.groups(audience.name),
        execution_fn=_schedule_requests(audience, partitions),
        default_status=dg.DefaultScheduleStatus[schedule.default_status],
        description=f"Sync audience {audience.name!r} at `{schedule.cron}` ({schedule.timezone}).",
    )


def dry_run_job(
    sync_ops: Iterable[str], keys: Iterable[dg.AssetKey]
) -> dg.UnresolvedAssetJobDefinition:
    """The audiences' steps with ``dry_run: true`` on each sync op: a preview, nothing sent.

    Only the audiences' own assets (``keys``, with their checks): any other asset added to the
    definitions (forms, removals) could send, and is not part of this job.
    """
    ops: Mapping[str, Any] = {op: {"config": {"dry_run": True}} for op in sorted(sync_ops)}
    return dg.define_asset_job(
        DRY_RUN_JOB,
        selection=dg.AssetSelection.assets(*keys),
        config={"ops": ops},
        run_tags={DRY_RUN_TAG: "true"},
        description="Dry run of every audience: sources and preparation run, the sync steps "
        "only show (masked) what they would send. Nothing is sent to Infobip.",
    )


def is_dry_run(context: dg.AssetExecutionContext) -> bool:
    """Whether the run is tagged as a dry run (then no step of it may send)."""
    return context.run.tags.get(DRY_RUN_TAG) == "true"


def tag_dry_run(context: dg.AssetExecutionContext) -> None:
    """Tag the run as a dry run, however it was launched (UI, CLI, schedule, sensor)."""
    if not is_dry_run(context):
        context.instance.add_run_tags(context.run.run_id, {DRY_RUN_TAG: "true"})
