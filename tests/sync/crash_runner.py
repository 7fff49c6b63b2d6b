"""A sync run in a process of its own, for the crash test to SIGKILL mid-sync.

    python -m tests.sync.crash_runner --base-url URL --dsn DSN --rows N --batch-size B --rate R
        [--lease-ttl S] [--poll-only]

Runs the engine against a served emulator with the ledger on PostgreSQL (the database every
run shares) and a loopback callback receiver (none with ``--poll-only``: reports by polling),
then prints the result's metadata as JSON. ``--lease-ttl`` is the run lease's lifetime, short
so that the test can take the lease over soon after killing this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from moments_pipeline.infobip import (
    CallbackReceiver,
    CallbackServer,
    MomentsClient,
    MomentsClientConfig,
)
from moments_pipeline.sync import (
    MomentsFlowDestination,
    SqlLedgerStore,
    SyncEngine,
    ledger_callback_handler,
)
from moments_pipeline.warehouse import PostgresWarehouse

from .support import AUDIENCE, CAMPAIGN, PARTITION, fast_options, people


async def run(args: argparse.Namespace) -> dict[str, object]:
    warehouse = PostgresWarehouse(args.dsn)
    ledger = SqlLedgerStore(warehouse)
    receiver = CallbackReceiver(raw_handler=ledger_callback_handler(ledger))
    config = MomentsClientConfig(
        base_url=args.base_url, api_key="test-key", rate_per_s=args.rate, max_in_flight=4
    )
    with CallbackServer(receiver) as server:
        async with MomentsClient(config) as client:
            notify_url = None if args.poll_only else server.notify_url
            destination = MomentsFlowDestination(client, notify_url=notify_url)
            engine = SyncEngine(
                destination,
                ledger,
                options=fast_options(
                    batch_size=args.batch_size,
                    max_concurrent_sends=4,
                    lease_ttl_s=args.lease_ttl,
                ),
            )
            result = await engine.run(
                audience=AUDIENCE,
                partition_key=PARTITION,
                campaign_id=CAMPAIGN,
                participants=people(args.rows),
            )
    warehouse.close()
    return result.as_metadata()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--lease-ttl", type=float, default=60.0)
    parser.add_argument("--poll-only", action="store_true")
    args = parser.parse_args()
    sys.stdout.write(json.dumps(asyncio.run(run(args))) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
