"""Benchmark: the user's path, from a warehouse table to the final report, through Dagster's CLI.

What a user runs, timed as the user sees it: an ``--rows`` audience table in a DuckDB file, one
audience YAML, the emulator served as a separate process at the account's 10 requests/s with
``--latency-ms`` of added latency, and ``dagster asset materialize --select '*'`` on the
project's definitions module (a fresh process per run, with its own ``DAGSTER_HOME``). Modes,
in this order on one warehouse, ledger and emulator, so each re-run meets exactly what a real
re-run would:

- ``callbacks``: the first run, reports received on a loopback notifyUrl receiver;
- ``unchanged``: the same materialize again on unchanged data (expected: 0 add requests);
- ``changed``: ``--change`` (1 %) of the rows replaced by new people, then materialize;
- ``polled``: a fresh warehouse and emulator, reports polled (no receiver), as behind a firewall.

``--data clean`` (distinct people, one email each) or ``--data messy`` (bench_prepare's generator:
duplicates, conflicts, bad phones and emails). For each run: wall time of the CLI process, each
step's duration from the run's event log, the engine's own duration, the add and report
requests counted at the emulator (its request log), the run process's peak RSS, the floor
(``sent participants / (10 x 1000)`` s) and the ratio. The last line is one JSON object.

    .venv/bin/python benchmarks/bench_e2e.py --rows 200000
    .venv/bin/python benchmarks/bench_e2e.py --rows 1000000 --data messy --modes callbacks,polled
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_prepare import generate as messy_rows  # noqa: E402
from emulator_process import served_emulator  # noqa: E402

CAMPAIGN_ID = 200000000000001  # the spec's example flow, seeded by the emulator
API_KEY = "bench-" + os.urandom(12).hex()
RATE_PER_S = 10
PER_REQUEST = 1000
AUDIENCE = "bench_audience"
MODES = ("callbacks", "unchanged", "changed", "polled")

CLEAN_YAML = f"""\
name: {AUDIENCE}
description: bench_e2e audience (clean rows)
source:
  table: audience
  row_id_column: row_id
identity:
  identify_by: {{column: email, type: EMAIL}}
  external_id: customer_id
  emails: [email]
flow:
  campaign_id: {CAMPAIGN_ID}
report:
  deadline_s: 300
"""

MESSY_YAML = f"""\
name: {AUDIENCE}
description: bench_e2e audience (messy rows)
source:
  table: audience
  row_id_column: row_id
identity:
  identify_by: {{column: email, type: EMAIL}}
  external_id: customer_id
  emails: [email, work_email]
  phones: [mobile, landline]
  region_column: country
variables:
  tier: tier
flow:
  campaign_id: {CAMPAIGN_ID}
conflicts:
  policy: quarantine
  recency_column: updated_at
report:
  deadline_s: 300
"""


def clean_rows(rows: int, *, start: int = 0) -> pd.DataFrame:
    ids = pd.RangeIndex(start, start + rows)
    return pd.DataFrame(
        {
            "row_id": ids,
            "customer_id": "c" + ids.astype(str),
            "email": "user" + ids.astype(str) + "@example.com",
        }
    )


def write_table(path: Path, frame: pd.DataFrame) -> None:
    with duckdb.connect(str(path)) as con:
        con.register("frame", frame)
        con.execute("CREATE OR REPLACE TABLE audience AS SELECT * FROM frame")


def change_rows(path: Path, data: str, share: float, rows: int) -> int:
    """Replace ``share`` of the rows by new people (new row ids and identifiers)."""
    n = max(1, int(rows * share))
    with duckdb.connect(str(path)) as con:
        con.execute(
            "DELETE FROM audience WHERE row_id IN (SELECT row_id FROM audience LIMIT ?)", [n]
        )
        fresh = clean_rows(n, start=10 * rows) if data == "clean" else messy_rows(n, seed=7)
        if data == "messy":
            fresh["row_id"] = fresh["row_id"] + 10 * rows
            fresh["customer_id"] = "new" + fresh["customer_id"].astype(str)
            fresh["email"] = "new." + fresh["email"].fillna("x@example.com")
        con.register("fresh", fresh)
        con.execute("INSERT INTO audience SELECT * FROM fresh")
    return n


def emulator_counts(base_url: str) -> dict[str, int]:
    entries = httpx.get(base_url + "/_emulator/requests", timeout=120).json()
    counts: dict[str, int] = {}
    for entry in entries:
        op = str(entry.get("operation"))
        counts[op] = counts.get(op, 0) + 1
        if entry.get("status") == 429:
            counts["http_429"] = counts.get("http_429", 0) + 1
    return counts


def step_times(home: Path) -> dict[str, Any]:
    """Step durations and the sync asset's metadata from the last run in ``home``."""
    os.environ["DAGSTER_HOME"] = str(home)
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            return {"run_status": None, "steps_s": {}}
        run = runs[0]
        starts: dict[str, float] = {}
        out: dict[str, Any] = {"run_status": run.status.value, "steps_s": {}}
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type_value == "STEP_START":
                starts[event.step_key] = record.timestamp
            elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
                began = starts.get(event.step_key, record.timestamp)
                out["steps_s"][event.step_key] = round(record.timestamp - began, 2)
            elif event.event_type_value == "ASSET_MATERIALIZATION":
                mat = event.event_specific_data.materialization  # type: ignore[union-attr]
                if mat.asset_key.path[-1] == "flow_sync":
                    meta = {k: v.value for k, v in mat.metadata.items()}
                    out["engine_s"] = meta.get("moments/duration_s")
                    out["sent_requests"] = meta.get("moments/sent_requests")
                    out["participants"] = meta.get("moments/participants")
                    out["reports_by_callback"] = meta.get("moments/reports_by_callback")
                    out["reports_by_polling"] = meta.get("moments/reports_by_polling")
        return out


def materialize(home: Path, env: dict[str, str]) -> tuple[float, float, int]:
    """Run the CLI once; return (wall seconds, peak RSS MB, exit code)."""
    cmd = [
        str(Path(sys.executable).with_name("dagster")),
        "asset",
        "materialize",
        "-m",
        "moments_pipeline.dagster.definitions",
        "-a",
        "defs",
        "--select",
        "*",
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        env={**env, "DAGSTER_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.stderr.write(stderr.decode(errors="replace")[-4000:])
    return wall, usage.ru_maxrss / 1024, proc.returncode


def run_mode(
    mode: str, base_url: str, work: Path, env: dict[str, str], before: dict[str, int]
) -> dict[str, Any]:
    home = work / f"home-{mode}"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    run_env = dict(env)
    if mode == "polled":
        run_env.pop("MOMENTS_CALLBACK_HOST", None)
    wall, rss_mb, code = materialize(home, run_env)
    after = emulator_counts(base_url)
    adds = after.get("add-flow-participants", 0) - before.get("add-flow-participants", 0)
    reports = after.get("get-flow-participants-added-report", 0) - before.get(
        "get-flow-participants-added-report", 0
    )
    out: dict[str, Any] = {
        "mode": mode,
        "exit_code": code,
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(rss_mb, 1),
        "add_requests": adds,
        "report_requests": reports,
        "http_429": after.get("http_429", 0) - before.get("http_429", 0),
        **step_times(home),
    }
    floor = adds * PER_REQUEST / (RATE_PER_S * PER_REQUEST) if adds else 0.0
    out["floor_s"] = round(floor, 2)
    out["floor_ratio"] = round(wall / floor, 3) if floor else None
    print(json.dumps(out), flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--data", choices=("clean", "messy"), default="clean")
    parser.add_argument("--latency-ms", type=int, default=150)
    parser.add_argument("--change", type=float, default=0.01)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes: {sorted(unknown)} (known: {', '.join(MODES)})")

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        work = Path(tmp)
        audiences = work / "audiences"
        audiences.mkdir()
        (audiences / f"{AUDIENCE}.yaml").write_text(
            CLEAN_YAML if args.data == "clean" else MESSY_YAML
        )
        frame = clean_rows(args.rows) if args.data == "clean" else messy_rows(args.rows, seed=1)

        def session(session_modes: list[str], tag: str) -> None:
            warehouse = work / f"warehouse-{tag}.duckdb"
            write_table(warehouse, frame)
            emulator = served_emulator(
                API_KEY, "--rate-limit", str(RATE_PER_S), "--latency-ms", str(args.latency_ms)
            )
            with emulator as base_url:
                env = {
                    **os.environ,
                    "INFOBIP_BASE_URL": base_url,
                    "INFOBIP_API_KEY": API_KEY,
                    "MOMENTS_WAREHOUSE_URL": f"duckdb:///{warehouse}",
                    "MOMENTS_AUDIENCES_DIR": str(audiences),
                    "MOMENTS_CALLBACK_HOST": "127.0.0.1",
                }
                for mode in session_modes:
                    if mode == "changed":
                        change_rows(warehouse, args.data, args.change, args.rows)
                    results.append(run_mode(mode, base_url, work, env, emulator_counts(base_url)))

        first = [m for m in modes if m != "polled"]
        if first:
            session(first, "a")
        if "polled" in modes:
            session(["polled"], "b")

    summary: dict[str, Any] = {"rows": args.rows, "data": args.data, "latency_ms": args.latency_ms}
    for r in results:
        summary[r["mode"]] = {
            k: r.get(k)
            for k in (
                "wall_s",
                "floor_s",
                "floor_ratio",
                "add_requests",
                "report_requests",
                "http_429",
                "peak_rss_mb",
                "steps_s",
                "engine_s",
                "exit_code",
            )
        }
    summary["ok"] = all(r["exit_code"] == 0 for r in results)
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
