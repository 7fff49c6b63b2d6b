"""Warehouse-triggered sensors: one run per partition whose source rows changed.

Opt-in per audience (``sensor: {watermark_column: updated_at, minimum_interval_s: 60}``). Each
evaluation opens the audience's source read-only and asks ONE aggregate query of it
(``Warehouse.source_day_summary``: row count and max watermark per day, or for the whole
source when the audience is unpartitioned). A partition's fingerprint is ``<rows>|<max
watermark>``; the cursor keeps the fingerprint of every partition already requested. Each
changed partition gets one ``RunRequest`` whose run key is the transition
``<partition>:<prev>-><curr>`` (short hashes of the fingerprints), so two ticks that see the
same change request it once (Dagster drops a repeated run key), and a change after it is a new
key. A day whose rows all went away is a change to the empty fingerprint: its run replaces the
stored rows with none and sends nobody.

Errors: a permanent one (a missing or mistyped column, a refused query: what
``source_problems`` reports) raises ``SensorConfigError`` and fails the tick loudly; a
transient one (the warehouse cannot be reached, a DuckDB file locked by a running sync, a read
that failed) returns a ``SkipReason`` saying why, and the next tick tries again. Nothing here
writes: the source is opened read-only and no ledger is touched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping

import dagster as dg

from moments_pipeline.config import LEDGER_CONNECTION, AudienceConfig
from moments_pipeline.dagster import _partitions
from moments_pipeline.dagster._resources import WarehouseResource
from moments_pipeline.dagster._specs import UNPARTITIONED, build_audience_specs
from moments_pipeline.sync import source_problems
from moments_pipeline.warehouse import (
    UnsafeQueryError,
    Warehouse,
    WarehouseError,
    connect_warehouse,
)

__all__ = [
    "MAX_REQUESTS_PER_TICK",
    "SensorConfigError",
    "build_audience_sensor",
    "build_sensors",
    "partition_fingerprints",
    "sensor_name",
]

#: Partitions requested by one tick at most (a new sensor on a year of days catches up over a
#: few ticks instead of launching hundreds of runs at once); the rest wait in no cursor entry.
MAX_REQUESTS_PER_TICK = 50
_CURSOR_VERSION = 1
_EMPTY = "0|"


class SensorConfigError(Exception):
    """The audience's sensor cannot work as configured (fails the tick; message says why)."""


def sensor_name(audience: AudienceConfig) -> str:
    """``<audience>__source_changed``."""
    return f"{audience.name}__source_changed"


def build_sensors(audiences: Iterable[AudienceConfig]) -> list[dg.SensorDefinition]:
    """The sensors of every audience that declares one."""
    return [s for a in audiences if (s := build_audience_sensor(a)) is not None]


def build_audience_sensor(audience: AudienceConfig) -> dg.SensorDefinition | None:
    """The audience's sensor (None when its YAML has no ``sensor:``)."""
    config = audience.sensor
    if config is None:
        return None
    specs = build_audience_specs(audience)
    keys = [spec.key for spec in specs.assets]
    partitions = _partitions.partitions_def(audience)

    @dg.sensor(
        name=sensor_name(audience),
        asset_selection=dg.AssetSelection.assets(*keys),
        minimum_interval_seconds=config.minimum_interval_s,
        description=f"Requests a run of {audience.name!r} for each "
        f"{'day' if partitions else 'source'} whose row count or max {config.watermark_column!r} "
        "changed (one aggregate query per evaluation, read-only).",
    )
    def _sensor(
        context: dg.SensorEvaluationContext, warehouse: WarehouseResource
    ) -> dg.SensorResult | dg.SkipReason:
        return evaluate(context, audience, warehouse)

    return _sensor


def evaluate(
    context: dg.SensorEvaluationContext, audience: AudienceConfig, warehouse: WarehouseResource
) -> dg.SensorResult | dg.SkipReason:
    """One tick: fingerprints now vs the cursor's, a RunRequest per changed partition."""
    url = (
        warehouse.url
        if audience.source.connection == LEDGER_CONNECTION
        else warehouse.sources.get(audience.source.connection)
    )
    if url is None:
        raise SensorConfigError(
            f"audience {audience.name!r}: source connection {audience.source.connection!r} is "
            "not configured"
        )
    try:
        source = connect_warehouse(url, read_only=True, source_timeout_s=warehouse.source_timeout_s)
    except WarehouseError as exc:  # unreachable, or a DuckDB file a running sync holds
        return dg.SkipReason(f"warehouse not reachable now, trying again next tick: {exc}")
    try:
        problems = source_problems(source, audience)
        if problems:
            raise SensorConfigError(
                f"audience {audience.name!r}: the sensor cannot read its source:\n"
                + "\n".join(f"- {p}" for p in problems)
            )
        try:
            now = partition_fingerprints(source, audience)
        except WarehouseError as exc:
            return dg.SkipReason(f"source read failed, trying again next tick: {exc}")
        except UnsafeQueryError as exc:  # the query check refused it: no later tick can pass
            raise SensorConfigError(f"audience {audience.name!r}: {exc}") from None
    finally:
        source.close()
    partitions = _partitions.partitions_def(audience)
    if partitions is not None:
        # Only days that are partitions already (today's exists once the day is over).
        valid = set(partitions.get_partition_keys())
        now = {k: v for k, v in now.items() if k in valid}
    before = _read_cursor(context.cursor)
    changed = sorted(k for k in {*before, *now} if now.get(k, _EMPTY) != before.get(k, _EMPTY))
    if not changed:
        return dg.SkipReason(f"no change in {len(now)} partition(s)")
    requests = []
    cursor = dict(before)
    for key in changed[:MAX_REQUESTS_PER_TICK]:
        prev, curr = before.get(key, _EMPTY), now.get(key, _EMPTY)
        requests.append(
            dg.RunRequest(
                run_key=f"{key or 'all'}:{_short(prev)}->{_short(curr)}",
                partition_key=key if key != UNPARTITIONED else None,
                tags={"moments/trigger": "sensor", "moments/audience": audience.name},
            )
        )
        if curr == _EMPTY:
            cursor.pop(key, None)
        else:
            cursor[key] = curr
    return dg.SensorResult(run_requests=requests, cursor=_write_cursor(cursor))


def partition_fingerprints(warehouse: Warehouse, audience: AudienceConfig) -> dict[str, str]:
    """Partition key -> ``<rows>|<max watermark>``, from one aggregate query of the source.

    Raises:
        WarehouseError: The read failed.
        ValueError: The audience declares no sensor.
    """
    if audience.sensor is None:
        raise ValueError(f"audience {audience.name!r} declares no sensor")
    partition = audience.partition
    source = audience.source
    rows = warehouse.source_day_summary(
        table=source.table,
        query=source.query,
        day_column=partition.date_column if partition else None,
        watermark_column=audience.sensor.watermark_column,
        timezone=partition.timezone if partition else "UTC",
        start=partition.start_date if partition else None,
    )
    return {
        (day.isoformat() if day is not None else UNPARTITIONED): f"{count}|{watermark or ''}"
        for day, count, watermark in rows
        if count
    }


def _short(fingerprint: str) -> str:
    # Watermarks can be long texts; the run key only needs to tell transitions apart.
    return hashlib.sha256(fingerprint.encode()).hexdigest()[:12]


def _read_cursor(cursor: str | None) -> dict[str, str]:
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
    except ValueError:
        raise SensorConfigError(f"the sensor's cursor is not JSON: {cursor[:80]!r}") from None
    if not isinstance(data, dict) or data.get("v") != _CURSOR_VERSION:
        raise SensorConfigError("the sensor's cursor is of another version; reset it in the UI")
    fingerprints = data.get("fingerprints", {})
    return {str(k): str(v) for k, v in fingerprints.items()}


def _write_cursor(fingerprints: Mapping[str, str]) -> str:
    return json.dumps(
        {"v": _CURSOR_VERSION, "fingerprints": dict(sorted(fingerprints.items()))},
        separators=(",", ":"),
    )
