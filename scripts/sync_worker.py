"""One sync in its own OS process: the worker of the concurrent-runs test and benchmark.

Generates ``--rows`` distinct people (numbered from ``--first``) in its own DuckDB file, then
syncs them into ``--campaign-id`` through ``SyncEngine`` and a ``MomentsClient`` whose rate
budget shares the account's pacing record in ``--pacing-dir`` (the production default of the
Dagster resource; without it the worker paces alone), reports by notifyUrl callback to a
loopback receiver. The API key comes
from ``MOMENTS_WORKER_API_KEY`` (never on the command line, where ``ps`` shows it).

To start several workers together it prints ``ready`` once set up and waits for a line on
stdin before sending. The last line printed is one JSON object (counts, timings, client stats).

    MOMENTS_WORKER_API_KEY=k python scripts/sync_worker.py --base-url URL --db a.duckdb \\
        --campaign-id 200000000000002 --rows 400 --first 0 --batch-size 10 --pacing-dir DIR
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

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


def participants(first: int, rows: int) -> list[SyncParticipant]:
    """Distinct people (unique email, phone and externalId) numbered from ``first``."""
    return [
        SyncParticipant(
            f"EXTERNAL_ID:w-{i}",
            {
                "identifyBy": {"identifier": f"w{i}@example.com", "type": "EMAIL"},
                "person": {
                    "externalId": f"w-{i}",
                    "contactInformation": {"phone": [{"number": f"4178{i:08d}"}]},
                },
            },
        )
        for i in range(first, first + rows)
    ]


def _record_issues(client: MomentsClient) -> list[float]:
    """Record the budget's issue times (``time.monotonic``: one clock for the whole host)."""
    budget = client.rate_budget
    issued = budget.issued
    times: list[float] = []

    def recording(at: float | None = None) -> None:
        times.append(budget.now() if at is None else at)
        issued(at)

    budget.issued = recording  # type: ignore[method-assign]
    return times


async def run(args: argparse.Namespace) -> dict[str, object]:
    warehouse = DuckDBWarehouse(Path(args.db))
    ledger = SqlLedgerStore(warehouse)
    ledger.ensure_schema()
    config = MomentsClientConfig(
        base_url=args.base_url,
        api_key=os.environ["MOMENTS_WORKER_API_KEY"],
        max_in_flight=args.max_in_flight,
        read_timeout_s=60,
        pacing_dir=args.pacing_dir,
    )
    options = SyncOptions(
        batch_size=args.batch_size,
        max_concurrent_sends=args.max_in_flight,
        callback_grace_s=args.callback_grace_s,
        report_deadline_s=60,
    )
    people = participants(args.first, args.rows)
    receiver = CallbackReceiver(raw_handler=ledger_callback_handler(ledger))
    with CallbackServer(receiver) as server:
        async with MomentsClient(config) as client:
            issues = _record_issues(client)
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.readline)
            started = time.time()
            engine = SyncEngine(
                MomentsFlowDestination(client, notify_url=server.notify_url),
                ledger,
                options=options,
            )
            result = await engine.run(
                audience=args.audience,
                partition_key="",
                campaign_id=args.campaign_id,
                participants=people,
            )
            stats = client.stats
    warehouse.close()
    return {
        "audience": args.audience,
        "started": started,
        "seconds": time.time() - started,
        "status_counts": dict(result.status_counts),
        "requests": stats.requests,
        "http_429": stats.http_429,
        "pid": os.getpid(),
        "issues": issues,
    }


def run_together(
    base_url: str, api_key: str, workers: list[list[str]], timeout_s: float = 600.0
) -> list[dict[str, object]]:
    """Start one worker per argument list, release them together, return their JSON lines.

    Raises:
        RuntimeError: A worker failed (its stderr's tail is in the message).
    """
    env = {**os.environ, "MOMENTS_WORKER_API_KEY": api_key}
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--base-url", base_url, *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for extra in workers
    ]
    try:
        for proc in procs:  # every worker set up (imports, warehouse, receiver) before any sends
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"worker exited before ready: {proc.communicate()[1][-3000:]}")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=timeout_s) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    results = []
    for proc, (out, err) in zip(procs, outputs, strict=True):
        if proc.returncode != 0:
            raise RuntimeError(f"worker failed ({proc.returncode}): {err[-3000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--audience", default="worker")
    parser.add_argument("--campaign-id", type=int, required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--max-in-flight", type=int, default=8)
    parser.add_argument("--callback-grace-s", type=float, default=10.0)
    # Without it the worker paces alone: the negative control of the concurrent-runs test.
    parser.add_argument("--pacing-dir", default=None)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
