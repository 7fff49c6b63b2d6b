"""Crash and resume: a sync process is SIGKILLed mid-sync, later runs finish the job.

The emulator is served on loopback (in a thread of this process, with added latency so that
requests are in flight at the moment of the kill); the killed run is a separate process; the
ledger is a PostgreSQL database both share. Afterwards every participant is in the flow exactly
once, nobody was merged, and every participant has a recorded status.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from moments_pipeline.emulator import EmulatorSettings, FaultSettings, FlowConfig, ManualClock
from moments_pipeline.emulator.testing import ServedEmulator
from moments_pipeline.infobip import CallbackReceiver, CallbackServer, MomentsClient
from moments_pipeline.sync import (
    SENDING_AT_CRASH,
    BatchState,
    MomentsFlowDestination,
    SqlLedgerStore,
    SyncEngine,
    ledger_callback_handler,
)
from moments_pipeline.warehouse import PostgresWarehouse

from .support import AUDIENCE, CAMPAIGN, PARTITION, client_config, fast_options, people

REPO = Path(__file__).resolve().parents[2]
ROWS, BATCH = 1500, 50
BATCHES = ROWS // BATCH


def _settled_count(dsn: str) -> int:
    wh = PostgresWarehouse(dsn)
    try:
        if not wh.table_exists("moments_sync_outbox"):
            return 0
        rows = wh.fetch_all(
            "SELECT count(*) FROM moments_sync_outbox WHERE operation_id IS NOT NULL"
        )
        return int(rows[0][0])
    finally:
        wh.close()


async def _run_in_process(base_url: str, ledger: SqlLedgerStore, **options: object) -> object:
    receiver = CallbackReceiver(handler=ledger_callback_handler(ledger))
    with CallbackServer(receiver) as server:
        async with MomentsClient(client_config(base_url)) as client:
            destination = MomentsFlowDestination(
                client, notify_url=server.notify_url, poll_initial_interval_s=0.05
            )
            engine = SyncEngine(
                destination,
                ledger,
                options=fast_options(batch_size=BATCH, callback_grace_s=0.5, **options),
            )
            return await engine.run(
                audience=AUDIENCE,
                partition_key=PARTITION,
                campaign_id=CAMPAIGN,
                participants=people(ROWS),
            )


@pytest.mark.served
@pytest.mark.postgres
async def test_sigkill_mid_sync_then_resume_adds_everyone_exactly_once(
    postgres_dsn: str, emulator_registry: list[object]
) -> None:
    settings = EmulatorSettings(
        record_exchanges=True,
        api_keys=[SecretStr("test-key")],
        rate_limit_per_s=None,
        processing_delay_s=0.0,
        callback_backoff_s=0.01,
        callback_retries=1,
        callback_timeout_s=1.0,
        flows=[FlowConfig(campaign_id=CAMPAIGN)],
        faults=FaultSettings(latency_ms=150),
    )
    with ServedEmulator(settings, api_key="test-key", clock=ManualClock()) as served:
        emulator_registry.append(served)
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.sync.crash_runner",
            "--base-url",
            served.base_url,
            "--dsn",
            postgres_dsn,
            "--rows",
            str(ROWS),
            "--batch-size",
            str(BATCH),
            "--rate",
            "15",
            cwd=REPO,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        deadline = time.monotonic() + 60
        try:
            while _settled_count(postgres_dsn) < 6:
                assert child.returncode is None, "the child ended before it was killed"
                assert time.monotonic() < deadline, "the child never got going"
                await asyncio.sleep(0.05)
        finally:
            child.send_signal(signal.SIGKILL)
            await child.wait()
        assert child.returncode == -signal.SIGKILL

        wh = PostgresWarehouse(postgres_dsn)
        ledger = SqlLedgerStore(wh)
        try:
            at_kill = ledger.batches(AUDIENCE, PARTITION, CAMPAIGN)
            with_operation = {b.batch_id for b in at_kill if b.operation_id}
            assert 6 <= len(with_operation) < BATCHES  # killed mid-sync
            operations_before = len(served.emulator.operations)

            resumed = await _run_in_process(served.base_url, ledger)
            # Batches that had an operationId were not sent again; SENDING ones were held.
            assert resumed.batches_sent + len(with_operation) <= BATCHES
            held = {h.batch_id: h for h in resumed.held_batches}
            assert all(h.reason == SENDING_AT_CRASH for h in held.values())
            assert not held.keys() & with_operation
            assert resumed.status_counts["ACCEPTED"] + resumed.status_counts.get(
                "HELD", 0
            ) + resumed.already_delivered >= ROWS - sum(h.size for h in held.values())
            assert len(served.emulator.operations) == operations_before + resumed.batches_sent

            final = await _run_in_process(served.base_url, ledger, resend_ambiguous=True)
            assert final.held_batches == []
            assert final.delivered == ROWS

            statuses = ledger.statuses(CAMPAIGN)
            assert len(statuses) == ROWS
            assert all(s.delivered for s in statuses)
            assert {b.state for b in ledger.batches(AUDIENCE, PARTITION, CAMPAIGN)} == {
                BatchState.REPORTED
            }
        finally:
            wh.close()

        async with httpx.AsyncClient(base_url=served.base_url) as inspect:
            members = (await inspect.get(f"/_emulator/flows/{CAMPAIGN}/participants")).json()
            merges = (await inspect.get("/_emulator/merges")).json()
            everyone = (await inspect.get("/_emulator/people")).json()
        assert merges == []
        assert len(everyone) == ROWS  # one profile per person
        assert sorted(m["emails"][0] for m in members) == sorted(
            p.body["identifyBy"]["identifier"] for p in people(ROWS)
        )
        assert json.dumps(resumed.as_metadata())  # the record is plain data
