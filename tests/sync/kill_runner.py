"""Sync runs that SIGKILL themselves at chosen points of the send path, one after the other.

    MOMENTS_KILL_PLAN='[{"point": "answered", "nth": 2}, ...]' \\
        python -m tests.sync.kill_runner --base-url URL --dsn DSN --notify-url URL \\
            --rows N --batch-size B

Test support only: the plan is read from ``MOMENTS_KILL_PLAN`` here and nowhere else; the
product offers the engine's ``probe`` seam, which this runner fills with a function that kills
its own process (``kill -9``) at the ``nth`` time the sync passes ``point`` (``_send.PROBE_*``).

The process imports everything once, then, for each step of the plan, waits for a line on
stdin (the test's go-ahead: it queues faults and looks at the ledger in between), forks a
child that runs one sync with that probe, and reports on stdout, as JSON lines, where the child
killed itself (``{"kill": point, "batch": id}``, written by the child right before the signal;
``recorded`` counts only flushes with no send between its rate slot and its answer, since a
flush runs beside the sends)
and how it ended (``{"step": i, "signal": 9}`` or ``{"step": i, "exit": 0}``). Forking an
idle, fully imported process makes twenty crashes cost well under a second each. One request
at a time (``max_concurrent_sends=1``, ``max_in_flight=1``), so the only request in flight at
a kill is the one at the probe.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections import Counter
from typing import Any

from moments_pipeline.infobip import MomentsClient, MomentsClientConfig
from moments_pipeline.sync import MomentsFlowDestination, SqlLedgerStore, SyncEngine
from moments_pipeline.sync._send import (
    PROBE_ANSWERED,
    PROBE_NOT_PROCESSED,
    PROBE_RECORDED,
    PROBE_SLOT,
)
from moments_pipeline.warehouse import PostgresWarehouse

from .support import AUDIENCE, CAMPAIGN, PARTITION, fast_options, people


def _say(item: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(item) + "\n")
    sys.stdout.flush()


def _killer(point: str, nth: int) -> Any:
    seen: Counter[str] = Counter()
    on_wire: set[str] = set()

    def probe(at: str, batch_id: str) -> None:
        if at == PROBE_SLOT:  # its SENDING mark may be committing from here on
            on_wire.add(batch_id)
        elif at in (PROBE_ANSWERED, PROBE_NOT_PROCESSED):
            on_wire.discard(batch_id)
        if at == PROBE_RECORDED and on_wire:
            return  # a flush runs beside the send: count only those with no request out
        seen[at] += 1
        if at == point and seen[at] == nth:
            _say({"kill": at, "batch": batch_id})
            os.kill(os.getpid(), signal.SIGKILL)

    return probe


async def _sync(args: argparse.Namespace, step: dict[str, Any]) -> None:
    warehouse = PostgresWarehouse(args.dsn)
    ledger = SqlLedgerStore(warehouse)
    config = MomentsClientConfig(
        base_url=args.base_url,
        api_key="test-key",
        rate_per_s=1000,
        max_in_flight=1,
        max_attempts=3,
        backoff_initial_s=0.0,
        backoff_max_s=0.0,
    )
    async with MomentsClient(config) as client:
        destination = MomentsFlowDestination(
            client, notify_url=args.notify_url, poll_initial_interval_s=0.05
        )
        engine = SyncEngine(
            destination,
            ledger,
            options=fast_options(
                batch_size=args.batch_size,
                max_concurrent_sends=1,
                callback_grace_s=0.3,
                lease_wait_s=10.0,
                lease_poll_s=0.05,
            ),
            probe=_killer(step["point"], int(step["nth"])),
        )
        await engine.run(
            audience=AUDIENCE,
            partition_key=PARTITION,
            campaign_id=CAMPAIGN,
            participants=people(args.rows),
        )
    warehouse.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--notify-url", required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    args = parser.parse_args()
    plan = json.loads(os.environ["MOMENTS_KILL_PLAN"])
    for index, step in enumerate(plan):
        if not sys.stdin.readline():
            return 1  # the test went away
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:  # the child: one sync, killed at its point (or done)
            code = 0
            try:
                asyncio.run(_sync(args, step))
            except BaseException as exc:
                _say({"error": f"{type(exc).__name__}: {exc}"})
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            _say({"step": index, "signal": os.WTERMSIG(status)})
        else:
            _say({"step": index, "exit": os.WEXITSTATUS(status)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
