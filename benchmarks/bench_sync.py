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
import contextlib
import gc
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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

CAMPAIGN_ID = 200000000000001  # the spec's example flow, seeded by the emulator
API_KEY = "bench-" + os.urandom(12).hex()
RATE_PER_S = 10
PER_REQUEST = 1000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def served_emulator(latency_ms: int) -> Iterator[str]:
    """Run ``moments-pipeline emulator`` in a subprocess at 10 requests/s; yield its URL."""
    port = _free_port()
    exe = Path(sys.executable).with_name("moments-pipeline")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "moments_pipeline.cli"]
    cmd += ["emulator", "--host", "127.0.0.1", "--port", str(port), "--api-key", API_KEY]
    cmd += ["--rate-limit", str(RATE_PER_S), "--latency-ms", str(latency_ms)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"emulator exited with {proc.returncode}: {err[-2000:]}")
            try:
                if httpx.get(base_url + "/_emulator/faults", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("emulator did not start within 30 s")
            time.sleep(0.1)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


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
    receiver = CallbackReceiver(handler=ledger_callback_handler(ledger))
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
            stats = client.stats
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
        "stored_statuses": {s: int(n) for s, n in stored},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--latency-ms", type=int, default=150)
    parser.add_argument("--max-in-flight", type=int, default=8)
    # The client's default spacing (1 % wider than 1/10 s). A 429 pauses the account for
    # Retry-After (1 s, ten requests' worth): widen this if a loaded machine shows any.
    parser.add_argument("--rate-safety-margin", type=float, default=0.01)
    parser.add_argument("--callback-grace-s", type=float, default=10.0)
    parser.add_argument("--report-deadline-s", type=float, default=120.0)
    args = parser.parse_args()

    with served_emulator(args.latency_ms) as base_url, tempfile.TemporaryDirectory() as tmp:
        out = asyncio.run(run_sync(base_url, Path(tmp) / "bench.duckdb", args.rows, args))
        flows = httpx.get(base_url + "/_emulator/flows", timeout=120).json()
        merges = httpx.get(base_url + "/_emulator/merges", timeout=120).json()
    result = out["result"]
    members = next(f["participants"] for f in flows if f["campaign_id"] == CAMPAIGN_ID)
    accepted = result.status_counts.get("ACCEPTED", 0)
    floor = args.rows / (RATE_PER_S * PER_REQUEST)
    detail = {
        "read_and_build_s": round(out["read_and_build_s"], 2),
        "engine_s": round(result.duration_s, 2),
        "requests": out["requests"],
        "batches_sent": result.batches_sent,
        "reports_by_callback": result.reports_by_callback,
        "reports_by_polling": result.reports_by_polling,
        "status_counts": dict(result.status_counts),
        "stored_statuses": out["stored_statuses"],
        "held_batches": len(result.held_batches),
        "flow_members": members,
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
