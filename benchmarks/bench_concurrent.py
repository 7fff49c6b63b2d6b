"""Benchmark: several syncs in several OS processes sharing one account's 10 requests/s.

Starts the emulator as a separate process (``moments-pipeline emulator --rate-limit 10``, the
account's real limit and the emulator's default 50 ms window tolerance), adds one flow per
worker through ``POST /_emulator/flows`` (no restart), then starts ``--workers`` processes of
``scripts/sync_worker.py``, each syncing ``--rows`` distinct people into its own flow and its
own DuckDB ledger, all sharing the account's pacing record (one directory). They are released
together.

Figures: answers 429 in the emulator's request log; the combined rate of rate-limited
requests between the first and the last add, as the emulator saw them (``combined_rate_per_s``
and its ratio to the limit; ``admitted_rate_per_s`` leaves the 429s out); the shortest span of
11 consecutive issues across all workers at the source (``issue_min_11_span_s``; at least the
budget's window, 1.01 s, means the shared budget never put 11 requests in a second); the same
at the emulator's limiter (``arrival_min_11_span_s``, where scheduling delays on a loaded
machine show); every worker's accepted count and time. A control run with
``--unshared`` gives every worker its own budget.

The last line printed is one JSON object.

    .venv/bin/python benchmarks/bench_concurrent.py
    .venv/bin/python benchmarks/bench_concurrent.py --workers 3 --rows 6000 --unshared
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from emulator_process import served_emulator
from sync_worker import run_together

API_KEY = "bench-" + os.urandom(12).hex()
LIMIT = 10.0
FIRST_FLOW = 310000000000001
LIMITED = {"add-flow-participants", "get-flow-participants-added-report", "remove-people-from-flow"}


def min_11_span(times: list[float]) -> float | None:
    """Shortest time covered by 11 consecutive events (>= 1 s: never 11 in a second)."""
    times = sorted(times)
    spans = [times[i + 10] - times[i] for i in range(len(times) - 10)]
    return round(min(spans), 4) if spans else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rows", type=int, default=10000, help="people per worker")
    parser.add_argument("--batch-size", type=int, default=50, help="people per request")
    parser.add_argument("--unshared", action="store_true", help="control: no shared record")
    args = parser.parse_args()

    load_before = os.getloadavg()
    with (
        served_emulator(API_KEY, "--rate-limit", str(int(LIMIT))) as base_url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        flows = [FIRST_FLOW + i for i in range(args.workers)]
        for campaign in flows:
            answer = httpx.post(f"{base_url}/_emulator/flows", json={"campaignId": campaign})
            answer.raise_for_status()
        shared = [] if args.unshared else ["--pacing-dir", str(Path(tmp) / "pacing")]
        workers = [
            [
                *("--db", str(Path(tmp) / f"ledger{i}.duckdb"), "--audience", f"bench{i}"),
                *("--campaign-id", str(campaign), "--rows", str(args.rows)),
                *("--first", str(i * 10_000_000), "--batch-size", str(args.batch_size)),
                *shared,
            ]
            for i, campaign in enumerate(flows)
        ]
        results = run_together(base_url, API_KEY, workers, timeout_s=3600)
        log = httpx.get(f"{base_url}/_emulator/requests", timeout=60).json()
    entries = [e for e in log if e.get("operation") in LIMITED]
    adds = sorted(e["time"] for e in entries if e["operation"] == "add-flow-participants")
    first, last = adds[0], adds[-1]
    busy = [e for e in entries if first <= e["time"] <= last]
    rate = (len(busy) - 1) / (last - first) if last > first else None
    answered = [e for e in busy if e.get("status") != 429]  # what got past the limiter
    admitted = (len(answered) - 1) / (last - first) if last > first else None
    issues = [t for r in results for t in r["issues"]]
    out: dict[str, Any] = {
        "benchmark": "bench_concurrent",
        "workers": args.workers,
        "rows_per_worker": args.rows,
        "batch_size": args.batch_size,
        "shared_budget": not args.unshared,
        "requests_logged": len(entries),
        "http_429": sum(1 for e in entries if e.get("status") == 429),
        "combined_rate_per_s": round(rate, 3) if rate else None,
        "combined_rate_vs_limit": round(rate / LIMIT, 4) if rate else None,
        "admitted_rate_per_s": round(admitted, 3) if admitted else None,
        "busy_span_s": round(last - first, 2),
        "issue_min_11_span_s": min_11_span(issues),
        "arrival_min_11_span_s": min_11_span([e["time"] for e in entries]),
        "accepted": [r["status_counts"].get("ACCEPTED", 0) for r in results],
        "worker_seconds": [round(float(r["seconds"]), 2) for r in results],
        "worker_429": [r["http_429"] for r in results],
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
