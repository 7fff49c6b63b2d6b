"""After a ``kill -9``, the next run starts sending within seconds, not a minute.

A sync process (``crash_runner``, with the default lease lifetime) holds the ledger's lease and
is mid-sync when it is SIGKILLed. Its heartbeat stops with it, so its lease expires at most
``SyncOptions().lease_ttl_s`` after its last beat; the next run, started right after the kill,
waits for exactly that and then sends. Measured from the next run's start to its first add
request reaching the emulator: under 10 s.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from moments_pipeline.emulator import EmulatorSettings, FaultSettings, FlowConfig
from moments_pipeline.emulator.testing import ServedEmulator
from moments_pipeline.infobip import MomentsClient
from moments_pipeline.sync import (
    MomentsFlowDestination,
    SqlLedgerStore,
    SyncEngine,
    SyncOptions,
    SyncResult,
)
from moments_pipeline.warehouse import PostgresWarehouse

from .support import AUDIENCE, CAMPAIGN, PARTITION, client_config, fast_options, people

REPO = Path(__file__).resolve().parents[2]
ROWS, BATCH = 1500, 50
RESTART_BUDGET_S = 10.0


def _sent_batches(dsn: str) -> int:
    wh = PostgresWarehouse(dsn)
    try:
        if not wh.table_exists("moments_sync_outbox"):
            return 0
        rows = wh.fetch_all("SELECT count(*) FROM moments_sync_outbox WHERE operation_id <> ''")
        return int(rows[0][0])
    finally:
        wh.close()


async def _next_run(base_url: str, ledger: SqlLedgerStore) -> SyncResult:
    async with MomentsClient(client_config(base_url)) as client:
        destination = MomentsFlowDestination(client, poll_initial_interval_s=0.05)
        # Default lease options but for the wait: the dead run's lease must be waited for.
        options = fast_options(batch_size=BATCH, lease_wait_s=30.0)
        return await SyncEngine(destination, ledger, options=options).run(
            audience=AUDIENCE,
            partition_key=PARTITION,
            campaign_id=CAMPAIGN,
            participants=people(ROWS),
        )


@pytest.mark.served
@pytest.mark.postgres
async def test_the_run_after_a_kill_9_sends_within_seconds(postgres_dsn: str) -> None:
    settings = EmulatorSettings(
        api_keys=[SecretStr("test-key")],
        rate_limit_per_s=None,
        processing_delay_s=0.0,
        flows=[FlowConfig(campaign_id=CAMPAIGN)],
        faults=FaultSettings(latency_ms=200),
    )
    ttl = SyncOptions().lease_ttl_s
    with ServedEmulator(settings, api_key="test-key") as served:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.sync.crash_runner",
            *("--base-url", served.base_url, "--dsn", postgres_dsn),
            *("--rows", str(ROWS), "--batch-size", str(BATCH), "--rate", "5"),
            *("--lease-ttl", str(ttl), "--poll-only"),
            cwd=REPO,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        try:
            deadline = time.monotonic() + 60
            while _sent_batches(postgres_dsn) < 3:  # holding the lease, mid-sync
                assert child.returncode is None, "the child ended before it was killed"
                assert time.monotonic() < deadline, "the child never got going"
                await asyncio.sleep(0.05)
        finally:
            child.send_signal(signal.SIGKILL)
            await child.wait()
        killed_at = time.monotonic()
        assert child.returncode == -signal.SIGKILL

        wh = PostgresWarehouse(postgres_dsn)
        try:
            (holder,) = wh.fetch_all("SELECT holder FROM moments_sync_run_lease")
            assert holder[0], "the killed run held the lease"
            before = len(served.emulator.operations)
            first_add: list[float] = []

            async def watch() -> None:
                for _ in range(6000):  # every 10 ms, for a minute at most
                    if len(served.emulator.operations) > before:
                        first_add.append(time.monotonic())
                        return
                    await asyncio.sleep(0.01)

            watcher = asyncio.create_task(watch())
            started = time.monotonic()
            result = await _next_run(served.base_url, SqlLedgerStore(wh))
            await asyncio.wait_for(watcher, 1)
            assert first_add, "the next run never sent"
        finally:
            wh.close()
        waited = first_add[0] - started
        print(
            f"restart after kill -9: first add {waited:.2f} s after the next run started "
            f"({first_add[0] - killed_at:.2f} s after the kill; lease lifetime {ttl} s)"
        )
        assert waited < RESTART_BUDGET_S
        assert waited <= ttl + 2.0  # the dead run's lease, then the run's own start-up
        assert result.batches_sent > 0
        per_person: dict[str, int] = {}
        for op in list(served.emulator.operations.values()):
            for ident in op.identify_by:
                key = ident["identifier"] if isinstance(ident, dict) else str(ident)
                per_person[key] = per_person.get(key, 0) + 1
        assert set(per_person.values()) == {1}, "somebody was sent twice"
