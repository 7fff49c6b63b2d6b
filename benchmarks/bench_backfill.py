"""Benchmark: a backfill of ``--days`` daily partitions of ``--per-day`` sign-ups, through Dagster.

The emulator is served in its own process with Infobip's limit on (``--rate-limit 10``, with
``--latency-ms`` of added latency). This process writes the sign-ups into a DuckDB file and
materializes the partitioned audience through Dagster as a user would: first one run of a day
without rows (nothing to send: Dagster's and the steps' per-run overhead), then the whole range
as ONE run (the single-run backfill policy; the same run as ``dagster asset materialize
--partition-range`` or a UI backfill), reports received by a loopback notifyUrl receiver.

Figures: per-run wall time and per-step times (from the run's event log), the sync step's time
per partition, the floor (``rows / (10 requests/s x 1000 per request)``), and the ratio of the
backfill's total time to ``1.2 x floor + per-run overhead``; persons sent once (flow members =
distinct people = accepted, nobody ``REJECTED_PERSON_IN_FLOW``), 429 responses, merges.
The last line printed is one JSON object.

    .venv/bin/python benchmarks/bench_backfill.py                    # 30 x 10,000
    .venv/bin/python benchmarks/bench_backfill.py --days 3 --per-day 2000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import httpx

from moments_pipeline.config import AudienceConfig
from moments_pipeline.dagster import MomentsResource, WarehouseResource, build_audience_assets
from moments_pipeline.warehouse import DuckDBWarehouse

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from emulator_process import served_emulator

CAMPAIGN_ID = 200000000000001  # the spec's example flow, seeded by the emulator
API_KEY = "bench-" + os.urandom(12).hex()
RATE_PER_S = 10
PER_REQUEST = 1000
START = date(2026, 10, 1)
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def generate_signups(path: Path, days: int, per_day: int) -> None:
    """``per_day`` distinct people signing up on each of ``days`` days (the first day is empty)."""
    warehouse = DuckDBWarehouse(path)
    try:
        warehouse.execute(
            "CREATE OR REPLACE TABLE signups AS SELECT "
            "'s' || lpad(i::VARCHAR, 9, '0') AS signup_id, "
            "'user' || i::VARCHAR || '@example.com' AS email, "
            "'Name' || (i % 997)::VARCHAR AS first_name, "
            # Day 1 .. days: day 0 (START) holds nobody, for the overhead run.
            "TIMESTAMP '2026-10-02 00:00:00' + to_days(CAST(i // ? AS INTEGER)) "
            "+ to_seconds(CAST((i % ?) * 8 AS BIGINT)) AS signed_up_at "
            "FROM range(?) t(i)",
            [per_day, per_day, days * per_day],
        )
    finally:
        warehouse.close()


def audience() -> AudienceConfig:
    return AudienceConfig.model_validate(
        {
            "name": "bench_daily",
            "source": {"table": "signups", "row_id_column": "signup_id"},
            "identity": {"identify_by": {"column": "email", "type": "EMAIL"}, "emails": ["email"]},
            "person": {"attributes": {"firstName": "first_name"}},
            "flow": {"campaign_id": CAMPAIGN_ID},
            "report": {"deadline_s": 300},
            "partition": {"date_column": "signed_up_at", "start_date": START.isoformat()},
        }
    )


def step_times(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """Seconds from STEP_START to STEP_SUCCESS/FAILURE of each step of a run."""
    starts: dict[str, float] = {}
    out: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or entry.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            starts[entry.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            out[entry.step_key] = round(entry.timestamp - starts[entry.step_key], 2)
    return out


def run(
    assets: list[Any],
    resources: dict[str, Any],
    instance: dg.DagsterInstance,
    first: str,
    last: str,
) -> tuple[dg.ExecuteInProcessResult, float]:
    started = time.perf_counter()
    result = dg.materialize(
        assets,
        resources=resources,
        instance=instance,
        tags={RANGE_START: first, RANGE_END: last},
        run_config=QUIET,
        raise_on_error=False,
    )
    return result, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=int, default=150)
    parser.add_argument("--poll", action="store_true", help="poll reports (no notifyUrl)")
    args = parser.parse_args()
    rows = args.days * args.per_day
    first, last = (START + timedelta(days=1)).isoformat(), (START + timedelta(days=args.days))
    load_before = os.getloadavg()
    emulator = served_emulator(
        API_KEY, "--rate-limit", str(RATE_PER_S), "--latency-ms", str(args.latency_ms)
    )
    with (
        emulator as base_url,
        tempfile.TemporaryDirectory() as tmp,
        dg.DagsterInstance.ephemeral() as instance,
    ):
        path = Path(tmp) / "bench.duckdb"
        generate_signups(path, args.days, args.per_day)
        resources = {
            "warehouse": WarehouseResource(url=f"duckdb:///{path}"),
            "moments": MomentsResource(
                base_url=base_url, api_key=API_KEY, callback_host=None if args.poll else "127.0.0.1"
            ),
        }
        assets = build_audience_assets(audience())
        # A day without rows: everything a run does but sending (Dagster, steps, checks).
        empty, overhead_s = run(assets, resources, instance, START.isoformat(), START.isoformat())
        backfill, total_s = run(assets, resources, instance, first, last.isoformat())
        flows = httpx.get(base_url + "/_emulator/flows", timeout=120).json()
        merges = httpx.get(base_url + "/_emulator/merges", timeout=120).json()
        log = httpx.get(base_url + "/_emulator/requests", timeout=120).json()
        empty_steps = step_times(instance, empty.run_id)
        backfill_steps = step_times(instance, backfill.run_id)
        per_partition = _per_partition(backfill)
        statuses = _statuses(path)
    members = next(f["participants"] for f in flows if f.get("campaignId") == CAMPAIGN_ID)
    floor = rows / (RATE_PER_S * PER_REQUEST)
    target = 1.2 * floor + overhead_s
    http_429 = sum(1 for e in log if e.get("status") == 429)
    adds = sum(1 for e in log if e.get("operation") == "add-flow-participants")
    detail = {
        "runs": [
            {"run": "empty day (overhead)", "seconds": round(overhead_s, 2), "steps": empty_steps},
            {
                "run": f"backfill {first}...{last.isoformat()}",
                "seconds": round(total_s, 2),
                "steps": backfill_steps,
            },
        ],
        "sync_seconds_per_partition": per_partition,
        "stored_statuses": statuses,
        "add_requests_logged": adds,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(detail))
    accepted = statuses.get("ACCEPTED", 0)
    summary = {
        "partitions": args.days,
        "rows_per_partition": args.per_day,
        "participants": rows,
        "runs": 1,
        "backfill_seconds": round(total_s, 2),
        "per_run_overhead_seconds": round(overhead_s, 2),
        "floor_seconds": floor,
        "target_seconds": round(target, 2),
        "ratio_to_target": round(total_s / target, 3),
        "floor_ratio": round(total_s / floor, 3),
        "sync_step_seconds": backfill_steps.get("bench_daily__sync"),
        "success": bool(backfill.success and empty.success),
        "http_429": http_429,
        "merges": len(merges),
        "flow_members": members,
        "accepted": accepted,
        "sent_once": members == rows == accepted and not statuses.get("IN_FLOW_AGAIN", 0),
    }
    print(json.dumps(summary))
    return 0 if summary["success"] and summary["sent_once"] and not merges else 1


def _per_partition(result: dg.ExecuteInProcessResult) -> dict[str, float]:
    for event in result.get_asset_materialization_events():
        if event.asset_key.path[-1] == "flow_sync":
            per = event.materialization.metadata["moments/partitions"].value
            assert isinstance(per, dict)
            return {k: v.get("moments/duration_s") for k, v in sorted(per.items())}
    return {}


def _statuses(path: Path) -> dict[str, int]:
    """Stored statuses; people Infobip found already in the flow counted as IN_FLOW_AGAIN."""
    warehouse = DuckDBWarehouse(path, read_only=True)
    try:
        counts: dict[str, int] = defaultdict(int)
        for status, reason, n in warehouse.fetch_all(
            "SELECT status, error_reason, count(*) FROM moments_sync_participant_status "
            "GROUP BY 1, 2"
        ):
            key = "IN_FLOW_AGAIN" if reason == "REJECTED_PERSON_IN_FLOW" else str(status)
            counts[key] += int(n)
        return dict(counts)
    finally:
        warehouse.close()


if __name__ == "__main__":
    sys.exit(main())
