"""The demo's daily-partitioned audience: its sensor decides which days run, one backfill run.

Imported by ``scripts/demo.py``. For each audience with ``partition:`` (the sample is
``audiences/newsletter_daily.yaml``): evaluate its sensor once (one aggregate query of the
source, a RunRequest per day), backfill the requested days in ONE run (the single-run backfill
policy, as a UI backfill or ``dagster asset materialize --partition-range`` does), evaluate the
sensor again with the new cursor (nothing changed: nothing requested), and summarize.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

STEPS = ("source", "participants", "quarantine", "flow_sync", "flow_report")
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def partitioned_names(audiences_dir: Path) -> set[str]:
    """Names of the audiences declaring daily partitions."""
    from moments_pipeline.config import load_audiences

    return {n for n, a in load_audiences(audiences_dir).items() if a.partition is not None}


def _tick(defs: Any, name: str, cursor: str | None) -> Any:
    import dagster as dg

    sensor = defs.resolve_sensor_def(f"{name}__source_changed")
    context = dg.build_sensor_context(
        cursor=cursor, resources={"warehouse": defs.resources["warehouse"]}
    )
    return sensor(context)


def run_partitioned(
    defs: Any, job: Any, instance: Any, name: str, base_url: str, quiet: dict[str, Any]
) -> tuple[bool, list[str]]:
    """Sensor tick, one backfill run of the requested days, sensor tick again; (ok, lines)."""
    import dagster as dg

    merges_before = len(httpx.get(f"{base_url}/_emulator/merges").json())
    first = _tick(defs, name, None)
    days = sorted(r.partition_key for r in getattr(first, "run_requests", None) or [])
    if not days:
        return False, [f"{name}: the sensor requested no day ({first})"]
    keys = [dg.AssetKey([name, s]) for s in STEPS]
    started = time.perf_counter()
    result = job.execute_in_process(
        instance=instance,
        asset_selection=keys,
        tags={RANGE_START: days[0], RANGE_END: days[-1]},
        raise_on_error=False,
        run_config=quiet,
    )
    elapsed = time.perf_counter() - started
    again = _tick(defs, name, first.cursor)
    quiet_again = isinstance(again, dg.SkipReason)
    merges = len(httpx.get(f"{base_url}/_emulator/merges").json()) - merges_before
    meta: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        if event.materialization.partition == days[0]:
            meta[event.asset_key.path[-1]] = {
                k: v.value for k, v in event.materialization.metadata.items()
            }
    sync, report = meta.get("flow_sync", {}), meta.get("flow_report", {})
    per_day = sync.get("moments/partitions", {})
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    failed = sorted(n for n, ok in checks.items() if not ok)
    lines = [
        f"{name}  (daily partitions, {len(days)} day(s) in one backfill run, {elapsed:.1f} s)",
        f"  sensor           requested {', '.join(days)}; next tick: "
        f"{again.skip_message if quiet_again else 'requested again (unexpected)'}",
        f"  rows read        {meta.get('source', {}).get('moments/rows', '?')}",
        f"  quarantined      {meta.get('quarantine', {}).get('moments/quarantined', '?')}",
        *(
            f"  {day}       {counts.get('moments/participants_in', 0)} in, "
            f"{counts.get('moments/already_delivered', 0)} already delivered, "
            f"{counts.get('moments/sent_requests', 0)} request(s)"
            for day, counts in sorted(per_day.items())
        ),
        f"  accepted         {report.get('moments/accepted', '?')}",
        f"  merges caused    {merges}",
        f"  checks           {len(checks) - len(failed)}/{len(checks)} passed"
        + (f"  FAILED: {', '.join(failed)}" if failed else ""),
    ]
    ok = result.success and not failed and checks and merges == 0 and quiet_again
    if not result.success:
        lines.append("  RUN FAILED: see the step errors above")
    return bool(ok), lines
