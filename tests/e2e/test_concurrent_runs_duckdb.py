"""Two Dagster runs on one DuckDB warehouse file, in two OS processes, both succeed.

DuckDB admits one writing process per file. Each step holds the file only while it runs and a
step finding it held waits (bounded backoff, ``WarehouseResource.duckdb_lock_wait_s``), so the
two runs take turns step by step; the ledger's run lease makes their syncs take turns too.
Below that, the warehouse: a file another process holds is waited for, or refused with a
message naming it when the wait is 0 or runs out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from moments_pipeline.emulator.testing import ServedEmulator
from moments_pipeline.warehouse import DuckDBWarehouse, WarehouseError, connect_warehouse
from tests.e2e.conftest import API_KEY, build_duckdb

CHILD = Path(__file__).with_name("concurrent_run_child.py")
HOLD = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
conn.close()
"""


def _holder(path: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_two_dagster_runs_on_one_duckdb_file_both_succeed(
    tmp_path: Path, served_sample_emulator: ServedEmulator
) -> None:
    path = tmp_path / "warehouse.duckdb"
    build_duckdb(path)
    env = {**os.environ, "MOMENTS_CHILD_API_KEY": API_KEY}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(CHILD),
                f"duckdb:///{path}",
                served_sample_emulator.base_url,
                name,
                str(tmp_path / "pacing"),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in ("cart_abandoners", "newsletter_welcome")
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.communicate()[1][-3000:]
        for proc in procs:  # released together: their steps contend for the file
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=300) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    for result, (_, err) in zip(results, outputs, strict=True):
        assert result["success"], (result["failures"], err[-3000:])
        assert int(result["sync"]["moments/sent_requests"]) >= 1
    warehouse = connect_warehouse(f"duckdb:///{path}")
    try:
        sent = warehouse.fetch_all(
            "SELECT campaign_id, count(*) FROM moments_sync_participant_status GROUP BY 1"
        )
    finally:
        warehouse.close()
    assert len(sent) == 2  # both audiences' people are in the one ledger


def test_a_held_file_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    DuckDBWarehouse(path).close()
    holder = _holder(path, 1.0)
    started = time.monotonic()
    warehouse = DuckDBWarehouse(path, lock_wait_s=30)
    try:
        assert warehouse.lock_waited_s > 0
        assert time.monotonic() - started < 25
        assert warehouse.fetch_all("SELECT 1") == [(1,)]
    finally:
        warehouse.close()
        holder.wait()


@pytest.mark.parametrize("wait_s", [0.0, 0.5])
def test_a_held_file_is_refused_naming_it_when_the_wait_runs_out(
    tmp_path: Path, wait_s: float
) -> None:
    path = tmp_path / "w.duckdb"
    DuckDBWarehouse(path).close()
    holder = _holder(path, 10.0)
    try:
        with pytest.raises(WarehouseError) as caught:
            connect_warehouse(f"duckdb:///{path}", lock_wait_s=wait_s)
        message = str(caught.value)
        assert str(path) in message and "another process holds it" in message
        assert f"within {wait_s:g} s" in message
    finally:
        holder.kill()
        holder.wait()
