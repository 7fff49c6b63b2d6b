"""Forms runs that SIGKILL themselves at chosen points of the send path, one after the other.

    MOMENTS_KILL_PLAN='[{"point": "answered", "nth": 2}, ...]' \\
        python -m tests.forms.kill_runner --base-url URL --dsn DSN --rows N

Test support only (as ``tests/sync/kill_runner.py`` for flows): for each step of the plan it
waits for a line on stdin (the test's go-ahead), forks a child that runs one forms sync whose
probe kills its own process at the ``nth`` pass of ``point`` (``sync._forms.PROBE_*``), and
reports ``{"kill": point, "key": send key}`` (written right before the signal) then
``{"step": i, "signal": 9}`` or ``{"step": i, "exit": 0}``. One request at a time.
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
from moments_pipeline.sync import FormsEngine, MomentsFormsDestination, SqlLedgerStore
from moments_pipeline.warehouse import PostgresWarehouse

from .support import fast_options, form_dict, rows, sends_for, source


def _say(item: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(item) + "\n")
    sys.stdout.flush()


def _killer(point: str, nth: int) -> Any:
    seen: Counter[str] = Counter()

    def probe(at: str, key: str) -> None:
        seen[at] += 1
        if at == point and seen[at] == nth:
            _say({"kill": at, "key": key})
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
    src = source()
    async with MomentsClient(config) as client:
        form = await form_dict(client)
        sends, _ = sends_for(rows(args.rows), src, form, ledger)
        engine = FormsEngine(
            MomentsFormsDestination(client),
            ledger,
            options=fast_options(max_concurrent_sends=1),
            probe=_killer(step["point"], int(step["nth"])),
        )
        await engine.run(
            source=src.name,
            form_id=src.form.id,
            sends=sends,
            submission_source=src.form.source,
            campaign=src.form.campaign,
        )
    warehouse.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--rows", type=int, required=True)
    args = parser.parse_args()
    plan = json.loads(os.environ["MOMENTS_KILL_PLAN"])
    for index, step in enumerate(plan):
        if not sys.stdin.readline():
            return 1
        pid = os.fork()
        if pid == 0:
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
