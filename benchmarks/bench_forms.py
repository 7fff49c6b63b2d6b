"""Benchmark: form submissions per second against the served emulator at its limit, and kill -9.

The emulator runs as a separate process (``moments-pipeline emulator --rate-limit 10``, with
``--latency-ms`` of added latency). A form source of ``--rows`` sign-ups lives in a DuckDB
file that is also the ledger. Two phases, each the path a user runs
(``sync.run_form_source``: read, get-form, identity and form checks, the forms engine):

1. **rate**: one run submits every row; submissions/s = rows sent / engine duration, against
   the configured rate (``--rate``, the client's account budget; 10 by default).
2. **kill -9**: a child process runs the same kind of source (``--rows`` new sign-ups) and is
   killed with SIGKILL after ``--kill-after-s``; this process then resumes the source. The
   emulator's submission store is then compared with the rows: no email may have been
   submitted twice (``double_submissions``), and every row is submitted once or held.

The last line printed is one JSON object.

    .venv/bin/python benchmarks/bench_forms.py --rows 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from moments_pipeline.config import FormSourceConfig
from moments_pipeline.infobip import MomentsClient, MomentsClientConfig
from moments_pipeline.sync import SqlLedgerStore, SyncOptions, run_form_source
from moments_pipeline.warehouse import DuckDBWarehouse

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from emulator_process import served_emulator

FORM = "f23f0f7c-9898-4feb-8f21-5afe2c29db7e"  # the spec's example form, seeded ACTIVE
# The child process must use the parent's key: handed over through the environment, never argv.
API_KEY = os.environ.get("MOMENTS_BENCH_API_KEY") or "bench-" + os.urandom(12).hex()


def _source(table: str) -> FormSourceConfig:
    return FormSourceConfig.model_validate(
        {
            "name": table,
            "form": {"id": FORM, "source": "bench"},
            "source": {"table": table, "row_id_column": "signup_id"},
            "fields": {"email": "email", "first_name": "first_name"},
        }
    )


def _write_rows(ledger_path: Path, table: str, rows: int) -> None:
    frame = pd.DataFrame(
        {
            "signup_id": [f"{table}-{i}" for i in range(rows)],
            "email": [f"{table}.{i}@example.com" for i in range(rows)],
            "first_name": [f"Lead {i}" for i in range(rows)],
        }
    )
    wh = DuckDBWarehouse(ledger_path)
    try:
        wh.write_frame(table, frame, mode="replace")
    finally:
        wh.close()


async def _run(base_url: str, ledger_path: Path, table: str, rate: float) -> dict[str, Any]:
    config = MomentsClientConfig(base_url=base_url, api_key=API_KEY, rate_per_s=rate)
    wh = DuckDBWarehouse(ledger_path)
    try:
        ledger = SqlLedgerStore(wh)
        ledger.ensure_schema()
        async with MomentsClient(config) as client:
            run = await run_form_source(
                client,
                ledger,
                wh,
                _source(table),
                options=SyncOptions(max_concurrent_sends=4, lease_wait_s=30),
            )
            stats = client.stats
    finally:
        wh.close()
    result = run.result
    return {
        "counts": result.counts,
        "sent": result.sent_this_run,
        "duration_s": round(result.duration_s, 3),
        "per_s": round(result.sent_this_run / result.duration_s, 3) if result.duration_s else 0,
        "http_429": stats.http_429,
        "requests": stats.requests,
    }


def _submissions(base_url: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = httpx.get(
        f"{base_url}/_emulator/forms/{FORM}/submissions", timeout=30
    ).json()
    return items


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--kill-after-s", type=float, default=10.0)
    parser.add_argument("--child", nargs=3, metavar=("BASE_URL", "LEDGER", "TABLE"))
    args = parser.parse_args()
    if args.child:  # the process that gets killed
        base_url, ledger, table = args.child
        asyncio.run(_run(base_url, Path(ledger), table, args.rate))
        return 0

    with (
        tempfile.TemporaryDirectory() as tmp,
        served_emulator(
            API_KEY, "--rate-limit", "10", "--latency-ms", str(args.latency_ms)
        ) as base_url,
    ):
        ledger = Path(tmp) / "bench.duckdb"
        _write_rows(ledger, "signups_rate", args.rows)
        rate = asyncio.run(_run(base_url, ledger, "signups_rate", args.rate))
        print(f"rate phase: {rate}", flush=True)

        _write_rows(ledger, "signups_kill", args.rows)
        env = {**os.environ, "MOMENTS_BENCH_API_KEY": API_KEY}
        child = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--rate",
                str(args.rate),
                "--child",
                base_url,
                str(ledger),
                "signups_kill",
            ],
            env=env,
        )
        time.sleep(args.kill_after_s)
        killed = child.poll() is None
        if killed:
            os.kill(child.pid, signal.SIGKILL)
        child.wait()
        before_resume = Counter(s["fields"]["email"] for s in _submissions(base_url))
        resumed = asyncio.run(_run(base_url, ledger, "signups_kill", args.rate))
        print(f"resume phase: {resumed}", flush=True)
        per_email = Counter(s["fields"]["email"] for s in _submissions(base_url))
        kill_emails = [f"signups_kill.{i}@example.com" for i in range(args.rows)]
        doubles = sum(1 for n in per_email.values() if n > 1)
        held = resumed["counts"].get("HELD", 0)
        result = {
            "benchmark": "forms",
            "rows": args.rows,
            "configured_rate_per_s": args.rate,
            "emulator_limit_per_s": 10,
            "latency_ms": args.latency_ms,
            "submissions_per_s": rate["per_s"],
            "ratio_to_configured_rate": round(rate["per_s"] / args.rate, 3),
            "rate_phase_429": rate["http_429"],
            "killed_with_sigkill": killed,
            "submitted_before_kill": sum(before_resume[e] for e in kill_emails),
            "sent_after_resume": resumed["sent"],
            "held_after_resume": held,
            "double_submissions": doubles,
            "kill_rows_submitted_once": sum(1 for e in kill_emails if per_email[e] == 1),
            "kill_rows_missing": sum(1 for e in kill_emails if per_email[e] == 0),
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
