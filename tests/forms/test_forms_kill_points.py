"""kill -9 at ten points of the forms send path, then resume: no row submitted twice.

A served emulator and a PostgreSQL ledger shared by a chain of forms runs (``kill_runner``),
each killing itself at one point: after its claim, holding its rate slot before the SENDING
mark, right after the mark (request not issued), in the pause after a 429, with the answer in
hand but not recorded, right after recording. After each kill, compared with the emulator's
own store of submissions:

- a record killed before its mark, or after a 429, is CLAIMED (never ambiguous), not submitted,
  and the next run submits it by itself;
- a record left SENDING is either the one killed between mark and byte (not submitted) or the
  one whose answer was not recorded (submitted once): a later run holds it, never re-sends it.

At the end every row was submitted at most once, every submitted row is recorded SENT or HELD,
and the only rows held are those two kinds.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from moments_pipeline.emulator import EmulatorSettings, QueuedFault
from moments_pipeline.emulator.testing import ServedEmulator
from moments_pipeline.infobip import MomentsClient, MomentsClientConfig
from moments_pipeline.sync import (
    FormsEngine,
    MomentsFormsDestination,
    SqlLedgerStore,
    form_scope,
    form_send_key,
)
from moments_pipeline.sync._forms import (
    FORM_CAMPAIGN,
    PROBE_ANSWERED,
    PROBE_CLAIMED,
    PROBE_NOT_PROCESSED,
    PROBE_ON_WIRE,
    PROBE_RECORDED,
    PROBE_SLOT,
)
from moments_pipeline.warehouse import PostgresWarehouse

from .support import FORM, fast_options, form_dict, rows, sends_for, source

REPO = Path(__file__).resolve().parents[2]
ROWS = 30
PLAN: list[dict[str, Any]] = [
    {"point": PROBE_CLAIMED, "nth": 1},
    {"point": PROBE_SLOT, "nth": 1},
    {"point": PROBE_ON_WIRE, "nth": 1},
    {"point": PROBE_ANSWERED, "nth": 1},
    {"point": PROBE_RECORDED, "nth": 1},
    {"point": PROBE_NOT_PROCESSED, "nth": 1, "fault": "429"},
    {"point": PROBE_ANSWERED, "nth": 3},
    {"point": PROBE_SLOT, "nth": 2},
    {"point": PROBE_ON_WIRE, "nth": 2},
    {"point": PROBE_CLAIMED, "nth": 3},
]
NEVER_ON_THE_WIRE = {PROBE_CLAIMED, PROBE_SLOT, PROBE_NOT_PROCESSED}


def _states(wh: PostgresWarehouse) -> dict[str, str]:
    rows_ = wh.fetch_all("SELECT batch_id, state FROM moments_sync_outbox")
    return {str(r[0]): str(r[1]) for r in rows_}


def _submitted_keys(served: ServedEmulator) -> Counter[str]:
    """Send key of every submission the emulator accepted (rebuilt from the row's email)."""
    by_email = {
        f"lead{i}@example.com": form_send_key("submit", FORM, "signups", "", f"s{i}")
        for i in range(ROWS)
    }
    return Counter(by_email[s["fields"]["email"]] for s in list(served.emulator.form_submissions))


async def _read(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
    assert line, "the runner ended early"
    item: dict[str, Any] = json.loads(line)
    if "error" in item:
        pytest.fail(f"a run of the chain failed: {item['error']}")
    return item


async def test_kill_9_at_ten_points_then_resume_submits_nobody_twice(postgres_dsn: str) -> None:
    settings = EmulatorSettings(api_keys=[SecretStr("test-key")], rate_limit_per_s=None)
    wh = PostgresWarehouse(postgres_dsn)
    ledger = SqlLedgerStore(wh)
    ledger.ensure_schema()
    gaps: set[str] = set()  # killed between the SENDING mark and the first byte
    unrecorded: set[str] = set()  # submitted, answer never recorded
    kills = 0
    try:
        with ServedEmulator(settings, api_key="test-key") as served:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.forms.kill_runner",
                "--base-url",
                served.base_url,
                "--dsn",
                postgres_dsn,
                "--rows",
                str(ROWS),
                cwd=REPO,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": str(REPO), "MOMENTS_KILL_PLAN": json.dumps(PLAN)},
            )
            assert proc.stdin is not None
            for index, step in enumerate(PLAN):
                if step.get("fault") == "429":
                    served.emulator.faults.enqueue(
                        QueuedFault(kind="429", count=1, operation="submit-form-data")
                    )
                proc.stdin.write(b"go\n")
                await proc.stdin.drain()
                kill = await _read(proc)
                assert "kill" in kill, (index, kill)
                end = await _read(proc)
                assert end == {"step": index, "signal": 9}
                kills += 1
                # The dead run's lease is free (its expiry would free it within seconds).
                wh.execute("DELETE FROM moments_sync_run_lease")
                point, key = kill["kill"], kill["key"]
                states, submitted = _states(wh), _submitted_keys(served)
                assert max(submitted.values(), default=1) == 1, (index, point)
                if point in NEVER_ON_THE_WIRE:
                    assert states[key] == "CLAIMED" and key not in submitted
                elif point == PROBE_ON_WIRE:
                    assert states[key] == "SENDING" and key not in submitted
                    gaps.add(key)
                elif point == PROBE_ANSWERED:
                    assert states[key] == "SENDING" and key in submitted
                    unrecorded.add(key)
                elif point == PROBE_RECORDED:
                    assert states[key] == "SENT" and key in submitted
                # Only those two kinds can be ambiguous; everything SENT was submitted.
                maybe = {k for k, s in states.items() if s in ("SENDING", "HELD")}
                assert maybe <= gaps | unrecorded, (index, point)
                sent = {k for k, s in states.items() if s == "SENT"}
                assert sent <= set(submitted)
            await asyncio.wait_for(proc.wait(), timeout=10)

            assert kills == len(PLAN)
            src = source()
            async with MomentsClient(
                MomentsClientConfig(base_url=served.base_url, api_key="test-key", rate_per_s=1000)
            ) as client:
                form = await form_dict(client)
                sends, _ = sends_for(rows(ROWS), src, form, ledger)
                final = await FormsEngine(
                    MomentsFormsDestination(client), ledger, options=fast_options()
                ).run(source=src.name, form_id=FORM, sends=sends)
            submitted = _submitted_keys(served)
            assert set(submitted.values()) == {1}  # nobody twice
            held = {row.send_key for row in final.rows if row.state == "HELD"}
            assert held == gaps | unrecorded
            assert final.counts == {"SUBMITTED": ROWS - len(held), "HELD": len(held)}
            # Every row reached the emulator exactly once, except those killed between mark
            # and byte (held, never re-sent blindly).
            assert set(submitted) == {row.send_key for row in final.rows} - gaps
            states = {r.state.value for r in ledger.batches(form_scope(FORM), "", FORM_CAMPAIGN)}
            assert states == {"SENT", "HELD"}
    finally:
        wh.close()
