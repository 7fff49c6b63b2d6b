"""Benchmark: an end-to-end sync of ``--rows`` participants from DuckDB into the served emulator.

The emulator runs as a separate process (``moments-pipeline emulator --rate-limit 10``, the
account's real limit, with ``--latency-ms`` of added latency). This process generates the
audience table in a DuckDB file, then times: reading the table, building the FlowParticipant
bodies, and ``SyncEngine.run`` (planning, the outbox ledger in the same DuckDB file, every send,
and every final report, received on a loopback ``CallbackServer`` or polled). Identity
preparation is not included (``bench_prepare.py`` measures it).

The floor is the rate limit: ``participants / (10 requests/s x 1000 per request)`` seconds.
The last line printed is one JSON object.

    .venv/bin/python benchmarks/bench_sync.py --rows 100000
    .venv/bin/python benchmarks/bench_sync.py            # 1,000,000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from moments_pipeline.infobip import (
    CallbackReceiver,
    CallbackServer,
    MomentsClient,
    MomentsClientConfig,
)
from moments_pipeline.sync import (
    MomentsFlowDestination,
    SqlLedgerStore,
    SyncEngine,
    SyncOptions,
    SyncParticipant,
    ledger_callback_handler,
)
from moments_pipeline.warehouse import DuckDBWarehouse

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from emulator_process import served_emulator

CAMPAIGN_ID = 200000000000001  # the spec's example flow, seeded by the emulator
API_KEY = "bench-" + os.urandom(12).hex()
RATE_PER_S = 10
PER_REQUEST = 1000


class GcTimer:
    """Times the cyclic collector's pauses in this process (gen 2 = full collections)."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        elif self.started is not None:
            self.pauses[info["generation"]].append(time.perf_counter() - self.started)
            self.started = None

    def summary(self) -> dict[str, Any]:
        every = [p for ps in self.pauses.values() for p in ps]
        return {
            "gc_collections_by_generation": [len(self.pauses[g]) for g in (0, 1, 2)],
            "gc_seconds_by_generation": [round(sum(self.pauses[g]), 3) for g in (0, 1, 2)],
            "gc_full_collections": len(self.pauses[2]),
            "gc_total_s": round(sum(every), 3),
            "gc_max_pause_ms": round(max(every, default=0.0) * 1000, 1),
        }


async def loop_lag_probe(lags: list[float], interval_s: float = 0.02) -> None:
    """Record how late the event loop wakes a 20 ms sleeper (its longest stalls)."""
    while True:
        due = time.perf_counter() + interval_s
        await asyncio.sleep(interval_s)
        lags.append(time.perf_counter() - due)


def arrival_view(base_url: str) -> dict[str, Any]:
    """How evenly add requests arrived at the emulator's limiter (its request log)."""
    entries = httpx.get(base_url + "/_emulator/requests", timeout=30).json()
    arrivals = sorted(e["time"] for e in entries if e.get("operation") == "add-flow-participants")
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    # The limiter allows 10 arrivals per 0.95 s: an 11th within 0.95 s of the 1st is a 429.
    spans = [arrivals[i + 10] - arrivals[i] for i in range(len(arrivals) - 10)]
    return {
        "logged_adds": len(arrivals),
        "logged_429": sum(1 for e in entries if e.get("status") == 429),
        "logged_429_at_s": [
            round(e["time"] - arrivals[0], 2) for e in entries if e.get("status") == 429
        ][:20],
        "arrival_min_11_span_s": round(min(spans), 4) if spans else None,
        "arrival_gap_max_s": round(max(gaps), 3) if gaps else None,
        "arrival_gaps_over_150ms": sum(1 for g in gaps if g > 0.15),
        "arrival_11_spans_under_950ms": sum(1 for s in spans if s < 0.95),
        "arrival_first_to_last_s": round(arrivals[-1] - arrivals[0], 2) if arrivals else None,
    }


def generate_audience(warehouse: DuckDBWarehouse, rows: int) -> None:
    """An audience table of ``rows`` distinct people (unique email, phone and externalId)."""
    warehouse.execute(
        "CREATE OR REPLACE TABLE audience AS SELECT "
        "'p' || lpad(i::VARCHAR, 9, '0') AS person_key, "
        "'user' || i::VARCHAR || '@example.com' AS email, "
        "'4179' || lpad(i::VARCHAR, 8, '0') AS phone, "
        "'ext-' || i::VARCHAR AS external_id, "
        "(i % 97)::BIGINT AS order_number "
        "FROM range(?) t(i)",
        [rows],
    )


def participants_from_table(warehouse: DuckDBWarehouse) -> list[SyncParticipant]:
    """Read the table and build FlowParticipant bodies column-wise."""
    frame = warehouse.read_table("audience")
    return [
        SyncParticipant(
            key,
            {
                "identifyBy": {"identifier": email, "type": "EMAIL"},
                "variables": {"orderNumber": order},
                "person": {
                    "externalId": ext,
                    "contactInformation": {"phone": [{"number": phone}]},
                },
            },
        )
        for key, email, phone, ext, order in zip(
            frame["person_key"].tolist(),
            frame["email"].tolist(),
            frame["phone"].tolist(),
            frame["external_id"].tolist(),
            frame["order_number"].tolist(),
            strict=True,
        )
    ]


async def run_sync(
    base_url: str, db_path: Path, rows: int, args: argparse.Namespace
) -> dict[str, Any]:
    warehouse = DuckDBWarehouse(db_path)
    generate_audience(warehouse, rows)
    ledger = SqlLedgerStore(warehouse)
    ledger.ensure_schema()
    receiver = CallbackReceiver(raw_handler=ledger_callback_handler(ledger))
    config = MomentsClientConfig(
        base_url=base_url,
        api_key=API_KEY,
        rate_per_s=RATE_PER_S,
        max_in_flight=args.max_in_flight,
        read_timeout_s=60,
        rate_safety_margin=args.rate_safety_margin,
    )
    options = SyncOptions(
        batch_size=PER_REQUEST,
        max_concurrent_sends=args.max_in_flight,
        callback_grace_s=args.callback_grace_s,
        report_deadline_s=args.report_deadline_s,
    )
    with CallbackServer(receiver) as server:
        async with MomentsClient(config) as client:
            destination = MomentsFlowDestination(client, notify_url=server.notify_url)
            engine = SyncEngine(destination, ledger, options=options)
            lags: list[float] = []
            probe = asyncio.create_task(loop_lag_probe(lags))
            gc_timer = GcTimer()
            gc.callbacks.append(gc_timer)
            wall0 = time.perf_counter()
            # Millions of fresh dicts would trigger full collections over all of them again
            # and again; collect once afterwards and move them out of the collector's sight.
            gc.disable()
            participants = participants_from_table(warehouse)
            gc.freeze()
            gc.enable()
            built = time.perf_counter() - wall0
            result = await engine.run(
                audience="bench",
                partition_key="bench",
                campaign_id=CAMPAIGN_ID,
                participants=participants,
            )
            seconds = time.perf_counter() - wall0
            gc.callbacks.remove(gc_timer)
            probe.cancel()
            stats = client.stats
            budget = client.rate_budget
    stored = warehouse.fetch_all(
        f"SELECT status, count(*) FROM {ledger.status} GROUP BY status ORDER BY status"
    )
    warehouse.close()
    return {
        "seconds": seconds,
        "read_and_build_s": built,
        "result": result,
        "http_429": stats.http_429,
        "requests": stats.requests,
        "rate_widenings": budget.widenings,
        "rate_wake_lateness_s": round(budget.wake_lateness_s, 2),
        "rate_wake_lateness_max_ms": round(budget.wake_lateness_max_s * 1000, 1),
        "response_mean_ms": round(stats.response_s_total / max(1, stats.requests) * 1000, 1),
        "response_max_ms": round(stats.response_s_max * 1000, 1),
        "rate_margin_end": round(budget.safety_margin, 4),
        "stored_statuses": {s: int(n) for s, n in stored},
        "diagnostics": {
            **gc_timer.summary(),
            "process_cpu_s": round(time.process_time(), 1),
            "loop_lag_max_ms": round(max(lags, default=0.0) * 1000, 1),
            "loop_lags_over_100ms": sum(1 for lag in lags if lag > 0.1),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--latency-ms", type=int, default=150)
    parser.add_argument("--max-in-flight", type=int, default=8)
    # The client's default starting spacing (1 % wider than 1/10 s); after a 429 (which pauses
    # the account for Retry-After, 1 s) the budget widens it by itself, up to 6 %.
    parser.add_argument("--rate-safety-margin", type=float, default=0.01)
    parser.add_argument("--callback-grace-s", type=float, default=10.0)
    parser.add_argument("--report-deadline-s", type=float, default=120.0)
    args = parser.parse_args()

    load_before = os.getloadavg()
    emulator = served_emulator(
        API_KEY, "--rate-limit", str(RATE_PER_S), "--latency-ms", str(args.latency_ms)
    )
    with emulator as base_url, tempfile.TemporaryDirectory() as tmp:
        out = asyncio.run(run_sync(base_url, Path(tmp) / "bench.duckdb", args.rows, args))
        arrivals = arrival_view(base_url)
        flows = httpx.get(base_url + "/_emulator/flows", timeout=120).json()
        merges = httpx.get(base_url + "/_emulator/merges", timeout=120).json()
    result = out["result"]
    # The inspection endpoint names the flow campaignId (campaign_id in older emulators).
    members = next(
        f["participants"] for f in flows if f.get("campaignId", f.get("campaign_id")) == CAMPAIGN_ID
    )
    accepted = result.status_counts.get("ACCEPTED", 0)
    floor = args.rows / (RATE_PER_S * PER_REQUEST)
    detail = {
        "read_and_build_s": round(out["read_and_build_s"], 2),
        "engine_s": round(result.duration_s, 2),
        "requests": out["requests"],
        "rate_widenings": out["rate_widenings"],
        "rate_wake_lateness_s": out["rate_wake_lateness_s"],
        "rate_wake_lateness_max_ms": out["rate_wake_lateness_max_ms"],
        "response_mean_ms": out["response_mean_ms"],
        "response_max_ms": out["response_max_ms"],
        "rate_margin_end": out["rate_margin_end"],
        "batches_sent": result.batches_sent,
        "reports_by_callback": result.reports_by_callback,
        "reports_by_polling": result.reports_by_polling,
        "status_counts": dict(result.status_counts),
        "stored_statuses": out["stored_statuses"],
        "held_batches": len(result.held_batches),
        "flow_members": members,
        **out["diagnostics"],
        **arrivals,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(detail))
    summary = {
        "participants": args.rows,
        "seconds": round(out["seconds"], 2),
        "floor_seconds": floor,
        "floor_ratio": round(out["seconds"] / floor, 3),
        "http_429": out["http_429"],
        "merges": len(merges),
        "accepted": accepted,
        "duplicate_flow_entries": accepted - members if members <= accepted else None,
        "flow_members": members,
    }
    print(json.dumps(summary))
    return 0 if accepted == args.rows and not merges and members == args.rows else 1


if __name__ == "__main__":
    sys.exit(main())
