"""Benchmark: removing departed people from a flow (mirror membership) at Infobip's 10/s.

Starts the emulator as a separate process (``moments-pipeline emulator``) with the 10/s limit
on and ``--latency-ms`` of added latency, puts ``--people`` people in the spec's example flow
(1000-participant adds, processed before the timed part), records them in a DuckDB ledger as
added by a mirror audience, plans their removal (``sync.plan_membership``: nobody is left in
the source) and applies it with ``sync.apply_removals`` through ``MomentsClient`` and the
account's rate budget: the path the ``<audience>__remove`` step runs, one DELETE per person,
each recorded before and after.

``ratio`` is DELETEs per second (removals over the time from the first start to the last
answer) over the 10/s limit; ``http_429`` counts the emulator's 429 answers in its request log.
The last line printed is one JSON object with the figures.

    .venv/bin/python benchmarks/bench_remove.py --people 1000 --latency-ms 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from moments_pipeline.infobip import MomentsClient, MomentsClientConfig
from moments_pipeline.sync import (
    BatchMember,
    BatchRecord,
    BatchState,
    MomentsRemover,
    SqlLedgerStore,
    StatusRow,
    apply_removals,
    plan_membership,
)
from moments_pipeline.warehouse import DuckDBWarehouse

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from emulator_process import served_emulator

CAMPAIGN_ID = 200000000000001  # the spec's example flow, seeded by the emulator
API_KEY = "bench-" + os.urandom(12).hex()
AUDIENCE = "bench_mirror"
LIMIT_PER_S = 10


def _email(i: int) -> str:
    return f"leaver{i}@example.com"


async def _populate(client: MomentsClient, people: int) -> list[tuple[str, str]]:
    """Add ``people`` to the flow; returns (batch id, operation id) per add, all processed."""
    ops = []
    for start in range(0, people, 1000):
        chunk = range(start, min(start + 1000, people))
        body = [{"identifyBy": {"identifier": _email(i), "type": "EMAIL"}} for i in chunk]
        answer = await client.add_flow_participants(CAMPAIGN_ID, body)
        report = await client.wait_for_report(CAMPAIGN_ID, answer.operation_id, deadline_s=120)
        assert all(p.status.value == "ACCEPTED" for p in report.participants)
        ops.append((f"bench-batch-{start}", answer.operation_id))
    return ops


def _record(ledger: SqlLedgerStore, people: int, ops: list[tuple[str, str]]) -> None:
    """What a mirror audience's sync leaves in the ledger after adding these people."""
    batches, members, statuses = [], [], []
    for index, (batch_id, operation_id) in enumerate(ops):
        chunk = range(index * 1000, min(index * 1000 + 1000, people))
        batches.append(
            BatchRecord(batch_id, AUDIENCE, "", CAMPAIGN_ID, 0, len(chunk), BatchState.PLANNED)
        )
        for i in chunk:
            key = f"EMAIL:{_email(i)}"
            members.append(BatchMember(batch_id, key, "EMAIL", _email(i), True))
            statuses.append(
                StatusRow(
                    CAMPAIGN_ID, key, AUDIENCE, "", batch_id, operation_id, "ACCEPTED", None, True
                )
            )
    ledger.plan_batches(batches, members)
    ledger.upsert_statuses(statuses)


async def _inspect(base_url: str, path: str) -> Any:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(f"{base_url}/_emulator/{path}")
        response.raise_for_status()
        return response.json()


async def run(args: argparse.Namespace, base_url: str, ledger: SqlLedgerStore) -> dict[str, Any]:
    config = MomentsClientConfig(
        base_url=base_url,
        api_key=SecretStr(API_KEY),
        allow_insecure_http=True,
        max_in_flight=args.max_in_flight,
    )
    async with MomentsClient(config) as client:
        ops = await _populate(client, args.people)
        _record(ledger, args.people, ops)
        plan = plan_membership(
            ledger,
            plan_id="bench-plan",
            audience=AUDIENCE,
            partition_key="",
            campaign_id=CAMPAIGN_ID,
            person_keys=[],
            source_rows=0,
            quarantined=0,
        )
        ledger.record_plan(plan.summary, plan.people, plan.removals)
        await asyncio.sleep(1.2)  # the emulator's window empties: the steady state is measured
        first_request = len(await _inspect(base_url, "requests"))
        started = time.monotonic()
        result = await apply_removals(
            MomentsRemover(client), ledger, plan.removals, concurrency=args.max_in_flight
        )
        elapsed = time.monotonic() - started
        stats = client.stats
    log = await _inspect(base_url, "requests")
    deletes = [r for r in log[first_request:] if r["operation"] == "remove-people-from-flow"]
    flows = await _inspect(base_url, "flows")
    left = next(f["participants"] for f in flows if f["campaignId"] == CAMPAIGN_ID)
    rate = result.removed / elapsed if elapsed else 0.0
    return {
        "benchmark": "bench_remove",
        "people": args.people,
        "latency_ms": args.latency_ms,
        "max_in_flight": args.max_in_flight,
        "removed": result.removed,
        "gone": result.gone,
        "unconfirmed": result.unconfirmed,
        "refused": result.refused,
        "deletes_issued": len(deletes),
        "elapsed_s": round(elapsed, 3),
        "removals_per_s": round(rate, 3),
        "limit_per_s": LIMIT_PER_S,
        "ratio": round(rate / LIMIT_PER_S, 4),
        "target_ratio": 0.95,
        "http_429": sum(1 for r in log if r["status"] == 429),
        "client_429": stats.http_429,
        "left_in_flow": left,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--max-in-flight", type=int, default=8)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        served_emulator(
            API_KEY, "--rate-limit", str(LIMIT_PER_S), "--latency-ms", str(args.latency_ms)
        ) as base_url,
    ):
        warehouse = DuckDBWarehouse(Path(tmp) / "ledger.duckdb")
        try:
            ledger = SqlLedgerStore(warehouse)
            ledger.ensure_schema()
            figures = asyncio.run(run(args, base_url, ledger))
        finally:
            warehouse.close()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
