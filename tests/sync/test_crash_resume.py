"""Crash and resume: a sync process is SIGKILLed mid-sync, later runs finish the job.

The emulator is served on loopback (in a thread of this process); the killed run is a separate
process that gets its reports by polling (no notifyUrl, so nothing can resolve its in-flight
requests after the kill); the ledger is a PostgreSQL database both share. Once a few batches
are settled, the next add requests are answered only after a long delay (the emulator
processes them first): the test kills the child only when the ledger shows batches SENDING
whose requests the emulator has processed, so the kill always catches requests in flight.

Afterwards: the resumed run takes over the dead run's expired lease, holds exactly the batches
caught SENDING, and sends nobody twice (one add request per person so far); the run with
``resend_ambiguous`` re-sends the held ones (REJECTED_PERSON_IN_FLOW counts as delivered).
Every participant is in the flow exactly once, nobody was merged, every row has a status.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from moments_pipeline.emulator import (
    EmulatorSettings,
    FaultSettings,
    FlowConfig,
    ManualClock,
    QueuedFault,
)
from moments_pipeline.emulator.testing import ServedEmulator
from moments_pipeline.infobip import CallbackReceiver, CallbackServer, MomentsClient
from moments_pipeline.sync import (
    IN_FLOW_REASON,
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


def _outbox(dsn: str) -> list[tuple[str, str, str | None]]:
    """(batch id, state, operationId) of every outbox row; empty before the schema exists."""
    wh = PostgresWarehouse(dsn)
    try:
        if not wh.table_exists("moments_sync_outbox"):
            return []
        rows = wh.fetch_all("SELECT batch_id, state, operation_id FROM moments_sync_outbox")
        return [(r[0], r[1], r[2]) for r in rows]
    finally:
        wh.close()


def _add_requests_per_person(served: ServedEmulator) -> Counter[str]:
    """How many add requests the emulator processed for each identifyBy (emails here)."""
    counts: Counter[str] = Counter()
    for op in list(served.emulator.operations.values()):
        for ident in op.identify_by:
            counts[ident["identifier"] if isinstance(ident, dict) else str(ident)] += 1
    return counts


async def _run_in_process(base_url: str, ledger: SqlLedgerStore, **options: object) -> Any:
    receiver = CallbackReceiver(raw_handler=ledger_callback_handler(ledger))
    with CallbackServer(receiver) as server:
        async with MomentsClient(client_config(base_url)) as client:
            destination = MomentsFlowDestination(
                client, notify_url=server.notify_url, poll_initial_interval_s=0.05
            )
            values: dict[str, Any] = {"batch_size": BATCH, "callback_grace_s": 0.5}
            values.update(options)
            engine = SyncEngine(destination, ledger, options=fast_options(**values))
            return await engine.run(
                audience=AUDIENCE,
                partition_key=PARTITION,
                campaign_id=CAMPAIGN,
                participants=people(ROWS),
            )


async def _kill_with_requests_in_flight(
    served: ServedEmulator, dsn: str, child: asyncio.subprocess.Process
) -> list[tuple[str, str, str | None]]:
    """Let a few batches settle, stall the next adds' answers, SIGKILL mid-request."""
    deadline = time.monotonic() + 60
    try:
        while sum(1 for _, _, op in _outbox(dsn) if op) < 6:
            assert child.returncode is None, "the child ended before it was killed"
            assert time.monotonic() < deadline, "the child never got going"
            await asyncio.sleep(0.05)
        # Processed at once, answered 8 s later: these requests are in flight at the kill.
        served.emulator.faults.enqueue(
            QueuedFault(kind="latency", count=4, operation="add-flow-participants", latency_ms=8000)
        )
        while True:
            assert child.returncode is None, "the child ended before it was killed"
            assert time.monotonic() < deadline, "no request was caught in flight"
            sending = {b for b, state, _ in _outbox(dsn) if state == "SENDING"}
            processed = {op.callback_data for op in list(served.emulator.operations.values())}
            if sending and sending <= processed:
                break
            await asyncio.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    return _outbox(dsn)


@pytest.mark.served
@pytest.mark.postgres
async def test_sigkill_mid_sync_then_resume_adds_everyone_exactly_once(postgres_dsn: str) -> None:
    settings = EmulatorSettings(
        api_keys=[SecretStr("test-key")],
        rate_limit_per_s=None,
        processing_delay_s=0.0,
        callback_backoff_s=0.01,
        callback_retries=1,
        callback_timeout_s=1.0,
        flows=[FlowConfig(campaign_id=CAMPAIGN)],
        faults=FaultSettings(latency_ms=100),
    )
    with ServedEmulator(settings, api_key="test-key", clock=ManualClock()) as served:
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
            "--lease-ttl",
            "2",
            "--poll-only",
            cwd=REPO,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        at_kill = await _kill_with_requests_in_flight(served, postgres_dsn, child)
        assert child.returncode == -signal.SIGKILL
        served.emulator.faults.configure(FaultSettings(latency_ms=100))  # no more stalls

        caught_sending = {b for b, state, _ in at_kill if state == BatchState.SENDING}
        with_operation = {b for b, _, op in at_kill if op}
        assert caught_sending, "the kill must catch at least one batch SENDING"
        assert 6 <= len(with_operation) < BATCHES  # killed mid-sync

        wh = PostgresWarehouse(postgres_dsn)
        ledger = SqlLedgerStore(wh)
        try:
            (dead_holder,) = wh.fetch_all("SELECT holder FROM moments_sync_run_lease")
            operations_before = len(served.emulator.operations)

            # The dead run's lease expires (2 s) and is taken over.
            resumed = await _run_in_process(
                served.base_url, ledger, lease_wait_s=30.0, lease_poll_s=0.1
            )
            assert wh.fetch_all("SELECT holder FROM moments_sync_run_lease") == []
            assert dead_holder[0]
            # Exactly the batches caught SENDING are held; settled ones were not sent again.
            held = {h.batch_id: h for h in resumed.held_batches}
            assert set(held) == caught_sending
            assert {h.reason for h in held.values()} == {SENDING_AT_CRASH}
            assert resumed.batches_sent == BATCHES - len(with_operation) - len(caught_sending)
            assert len(served.emulator.operations) == operations_before + resumed.batches_sent
            # Nobody was sent twice so far: one processed add request per person (the held
            # batches' requests were processed by the emulator before the kill too).
            per_person = _add_requests_per_person(served)
            everyone = [p.body["identifyBy"]["identifier"] for p in people(ROWS)]
            assert {per_person[e] for e in everyone} == {1}
            assert sum(per_person.values()) == ROWS
            held_people = {
                m.person_key for m in ledger.batch_members(list(held)) if m.is_identify_by
            }
            assert resumed.status_counts["HELD"] == len(held_people) > 0
            assert resumed.delivered + len(held_people) == ROWS

            final = await _run_in_process(served.base_url, ledger, resend_ambiguous=True)
            assert final.held_batches == []
            assert final.delivered == ROWS
            assert final.batches_sent == len(caught_sending)
            assert final.reason_counts[IN_FLOW_REASON] == len(held_people)

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
            profiles = (await inspect.get("/_emulator/people")).json()
        assert merges == []
        assert len(profiles) == ROWS  # one profile per person
        assert sorted(m["emails"][0] for m in members) == sorted(everyone)
        assert json.dumps(resumed.as_metadata())  # the record is plain data
