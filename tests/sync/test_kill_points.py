"""kill -9 at twenty-odd deterministic points of the send path, then resume: nobody twice.

A served emulator (rate limit off) and a PostgreSQL ledger shared by a chain of sync processes
(``kill_runner``), each killing itself at one point of the plan: after its claim, holding its
rate slot before the SENDING mark, right after the mark (the request not issued yet), in the
pause after a 429, with the answer in hand but not recorded, right after answers were
recorded. One request at a time, so the only request in flight is the one at the probe. The
callback receiver lives in this process and records into the ledger, so a later run resolves
an ambiguous batch that did reach the emulator by its callback.

After each kill, compared with the emulator's record of the add requests it processed:

- what the next run must hold (SENDING rows: on the wire, no answer recorded) is only ever a
  batch whose request the emulator processed without the ledger recording the answer, or the
  one batch killed between its durable SENDING mark and its first byte (no server can tell
  that one from a request in flight: the mark must come first);
- a batch killed before its mark, or in the pause after a 429, is CLAIMED, not ambiguous, and
  the next run sends it automatically.

At the end every participant is in the flow exactly once, with exactly one processed add
request each, and the only batches held were those killed between mark and byte; an
operator's re-send puts them in, still once each.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from moments_pipeline.emulator import EmulatorSettings, FlowConfig, QueuedFault
from moments_pipeline.emulator.testing import ServedEmulator
from moments_pipeline.infobip import CallbackReceiver, CallbackServer, MomentsClient
from moments_pipeline.sync import (
    SENDING_AT_CRASH,
    BatchState,
    MomentsFlowDestination,
    SqlLedgerStore,
    SyncEngine,
    SyncResult,
    ledger_callback_handler,
)
from moments_pipeline.sync._send import (
    PROBE_ANSWERED,
    PROBE_CLAIMED,
    PROBE_NOT_PROCESSED,
    PROBE_ON_WIRE,
    PROBE_RECORDED,
    PROBE_SLOT,
)
from moments_pipeline.warehouse import PostgresWarehouse

from .support import AUDIENCE, CAMPAIGN, PARTITION, client_config, fast_options, people

REPO = Path(__file__).resolve().parents[2]
ROWS, BATCH = 200, 4

_429 = {"fault": "429"}
PLAN: list[dict[str, Any]] = [
    {"point": PROBE_CLAIMED, "nth": 1},
    {"point": PROBE_SLOT, "nth": 1},
    {"point": PROBE_ANSWERED, "nth": 1},
    {"point": PROBE_ON_WIRE, "nth": 1},
    {"point": PROBE_NOT_PROCESSED, "nth": 1, **_429},
    {"point": PROBE_ANSWERED, "nth": 2},
    {"point": PROBE_SLOT, "nth": 3},
    {"point": PROBE_CLAIMED, "nth": 2},
    {"point": PROBE_NOT_PROCESSED, "nth": 1, **_429},
    {"point": PROBE_ANSWERED, "nth": 1},
    {"point": PROBE_SLOT, "nth": 2},
    {"point": PROBE_ANSWERED, "nth": 3},
    {"point": PROBE_CLAIMED, "nth": 3},
    {"point": PROBE_NOT_PROCESSED, "nth": 1, **_429},
    {"point": PROBE_ON_WIRE, "nth": 2},
    {"point": PROBE_ANSWERED, "nth": 1},
    {"point": PROBE_SLOT, "nth": 1},
    {"point": PROBE_ANSWERED, "nth": 2},
    {"point": PROBE_CLAIMED, "nth": 1},
    {"point": PROBE_ON_WIRE, "nth": 1},
    {"point": PROBE_SLOT, "nth": 2},
    # Last: a flush with no send beside it comes only once the sends are done (the answers
    # otherwise travel with the next SENDING mark), so this one lets the run send the rest.
    {"point": PROBE_RECORDED, "nth": 1},
]
NEVER_ON_THE_WIRE = {PROBE_CLAIMED, PROBE_SLOT, PROBE_NOT_PROCESSED}


def _outbox(wh: PostgresWarehouse) -> dict[str, tuple[str, str | None]]:
    rows = wh.fetch_all("SELECT batch_id, state, operation_id FROM moments_sync_outbox")
    return {r[0]: (r[1], r[2]) for r in rows}


def _processed(served: ServedEmulator) -> dict[str, str]:
    """operationId -> callbackData (= batch id) of every add request the emulator processed."""
    return {op_id: str(op.callback_data) for op_id, op in list(served.emulator.operations.items())}


def _adds_per_person(served: ServedEmulator) -> Counter[str]:
    counts: Counter[str] = Counter()
    for op in list(served.emulator.operations.values()):
        for ident in op.identify_by:
            counts[ident["identifier"] if isinstance(ident, dict) else str(ident)] += 1
    return counts


async def _read(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
    assert line, "the runner ended early"
    item: dict[str, Any] = json.loads(line)
    if "error" in item:
        pytest.fail(f"a sync of the chain failed: {item['error']}")
    return item


async def _run(base_url: str, notify_url: str, ledger: SqlLedgerStore, **opts: Any) -> SyncResult:
    async with MomentsClient(client_config(base_url)) as client:
        destination = MomentsFlowDestination(
            client, notify_url=notify_url, poll_initial_interval_s=0.05
        )
        options = fast_options(batch_size=BATCH, callback_grace_s=0.3, **opts)
        return await SyncEngine(destination, ledger, options=options).run(
            audience=AUDIENCE,
            partition_key=PARTITION,
            campaign_id=CAMPAIGN,
            participants=people(ROWS),
        )


@pytest.mark.served
@pytest.mark.postgres
async def test_kill_9_at_every_point_of_the_send_path(postgres_dsn: str) -> None:
    settings = EmulatorSettings(
        api_keys=[SecretStr("test-key")],
        rate_limit_per_s=None,
        processing_delay_s=0.0,
        callback_backoff_s=0.01,
        callback_retries=2,
        callback_timeout_s=1.0,
        flows=[FlowConfig(campaign_id=CAMPAIGN)],
    )
    wh = PostgresWarehouse(postgres_dsn)
    ledger = SqlLedgerStore(wh)
    ledger.ensure_schema()
    receiver = CallbackReceiver(raw_handler=ledger_callback_handler(ledger))
    kills: list[dict[str, Any]] = []
    gap_batches: set[str] = set()  # killed between their SENDING mark and their first byte
    try:
        with (
            ServedEmulator(settings, api_key="test-key") as served,
            CallbackServer(receiver) as server,
        ):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.sync.kill_runner",
                "--base-url",
                served.base_url,
                "--dsn",
                postgres_dsn,
                "--notify-url",
                server.notify_url,
                "--rows",
                str(ROWS),
                "--batch-size",
                str(BATCH),
                cwd=REPO,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": str(REPO), "MOMENTS_KILL_PLAN": json.dumps(PLAN)},
            )
            assert proc.stdin is not None
            for index, step in enumerate(PLAN):
                if step.get("fault") == "429":
                    served.emulator.faults.enqueue(
                        QueuedFault(kind="429", count=1, operation="add-flow-participants")
                    )
                proc.stdin.write(b"go\n")
                await proc.stdin.drain()
                item = await _read(proc)
                kill = None
                if "kill" in item:
                    kill, item = item, await _read(proc)
                assert item["step"] == index
                # The run is dead (its process was reaped): its lease is free, as its expiry
                # would make it a few seconds later.
                wh.execute("DELETE FROM moments_sync_run_lease")
                if kill is None:
                    assert item.get("exit") == 0
                    continue
                assert item.get("signal") == 9
                point, batch = kill["kill"], kill["batch"]
                outbox, processed = _outbox(wh), _processed(served)
                recorded = {op for _, op in outbox.values() if op}
                unrecorded = {b for op, b in processed.items() if op not in recorded}
                sending = {b for b, (state, _) in outbox.items() if state == "SENDING"}
                held = {b for b, (state, _) in outbox.items() if state == "HELD"}
                if point == PROBE_ON_WIRE:
                    assert outbox[batch][0] == "SENDING" and batch not in processed.values()
                    gap_batches.add(batch)
                elif point in NEVER_ON_THE_WIRE:
                    assert outbox[batch][0] == "CLAIMED"  # not ambiguous: sent again later
                    assert batch not in processed.values()
                elif point == PROBE_ANSWERED:
                    assert batch in sending and batch in unrecorded
                assert len(sending) <= 1
                # What may be ambiguous: requests processed without a recorded answer, plus
                # the batches killed between mark and byte.
                extra = (sending | held) - unrecorded - gap_batches
                assert not extra, (
                    index,
                    point,
                    batch,
                    {b: outbox[b] for b in extra},
                    [op for op, b in processed.items() if b in extra],
                )
                kills.append(
                    {
                        "point": point,
                        "ambiguous": len(sending | held),
                        "unrecorded": len(unrecorded),
                        "gaps": len(gap_batches),
                    }
                )
            await asyncio.wait_for(proc.wait(), timeout=10)

            assert len(kills) >= 20, kills
            assert {k["point"] for k in kills} == {s["point"] for s in PLAN}
            final = await _run(served.base_url, server.notify_url, ledger)
            held_at_end = {h.batch_id: h for h in final.held_batches}
            assert set(held_at_end) == gap_batches
            assert {h.reason for h in held_at_end.values()} <= {SENDING_AT_CRASH}
            assert max(_adds_per_person(served).values()) == 1  # nobody sent twice so far
            # The operator re-sends the batches that never left: each person still once.
            resent = await _run(served.base_url, server.notify_url, ledger, resend_ambiguous=True)
            assert resent.held_batches == []
            assert resent.batches_sent == len(gap_batches)
            per_person = _adds_per_person(served)
            everyone = [p.body["identifyBy"]["identifier"] for p in people(ROWS)]
            assert sorted(per_person) == sorted(everyone)
            assert set(per_person.values()) == {1}
            states = {state for state, _ in _outbox(wh).values()}
            assert states == {BatchState.REPORTED.value}
            statuses = ledger.statuses(CAMPAIGN)
            assert len(statuses) == ROWS and all(s.delivered for s in statuses)
            async with httpx.AsyncClient(base_url=served.base_url) as inspect:
                members = (await inspect.get(f"/_emulator/flows/{CAMPAIGN}/participants")).json()
                merges = (await inspect.get("/_emulator/merges")).json()
            assert sorted(m["emails"][0] for m in members) == sorted(everyone)
            assert merges == []
    finally:
        wh.close()
    summary = Counter(k["point"] for k in kills)
    worst = max(k["ambiguous"] - k["unrecorded"] - k["gaps"] for k in kills)
    sys.stdout.write(
        f"kill points: {len(kills)} {dict(summary)}; held at end: {len(gap_batches)} (all "
        f"killed between mark and byte); at any kill, ambiguous - unrecorded - gaps so far "
        f"<= {worst}\n"
    )
