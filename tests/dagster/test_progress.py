"""Progress of a sync: the engine's callback counts and the throttled log lines.

The lines in a real run's event log: ``tests/e2e/test_progress_e2e.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

from starlette.applications import Starlette

from moments_pipeline.dagster._progress import ProgressLog, progress_line
from moments_pipeline.emulator.testing import EmulatorTransport
from moments_pipeline.infobip import MomentsClient
from moments_pipeline.sync import (
    MomentsFlowDestination,
    SqlLedgerStore,
    SyncEngine,
    SyncProgress,
)
from moments_pipeline.warehouse import DuckDBWarehouse
from tests.sync.support import (
    AUDIENCE,
    CAMPAIGN,
    PARTITION,
    client_config,
    fast_options,
    people,
    sync_env,
)


async def test_the_engine_reports_monotone_counts_up_to_the_total(
    make_emulator_app: Callable[..., Starlette], tmp_path: Path
) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "ledger.duckdb")
    ledger = SqlLedgerStore(warehouse)
    seen: list[SyncProgress] = []
    async with sync_env(make_emulator_app, ledger) as env:
        client = MomentsClient(client_config(), transport=EmulatorTransport(env.app))
        async with client:
            engine = SyncEngine(
                MomentsFlowDestination(client, poll_initial_interval_s=0.05),
                ledger,
                options=fast_options(batch_size=20),
                progress=seen.append,
            )
            result = await engine.run(
                audience=AUDIENCE,
                partition_key=PARTITION,
                campaign_id=CAMPAIGN,
                participants=people(110),
            )
    warehouse.close()
    assert result.status_counts == {"ACCEPTED": 110}
    assert seen[0].sent == 0 and seen[0].total == 110
    assert [p.requests for p in seen] == list(range(7))  # the start, then 6 batches
    for before, after in itertools.pairwise(seen):
        assert after.sent >= before.sent and after.settled >= before.settled
        assert after.elapsed_s >= before.elapsed_s
    assert all(p.sent <= p.settled <= p.total == 110 for p in seen)
    assert (seen[-1].sent, seen[-1].settled) == (110, 110)


def test_progress_log_writes_at_most_one_line_per_interval_and_the_last() -> None:
    now = [0.0]
    lines: list[str] = []
    log = ProgressLog(lines.append, "vip", every_s=5.0, clock=lambda: now[0])
    for i in range(101):  # a batch every 0.1 s for 10 s
        now[0] = i * 0.1
        log(SyncProgress(sent=i * 10, settled=i * 10, total=1000, requests=i, elapsed_s=now[0]))
    assert len(lines) == 3  # at 0 s, at 5 s, and the final one at 10 s
    assert lines[0] == "vip: sent 0/1000 participants (0 requests), 0.0 req/s, ETA unknown"
    assert lines[1] == "vip: sent 500/1000 participants (50 requests), 10.0 req/s, ETA 5 s"
    assert lines[2].endswith("sent 1000/1000 participants (100 requests), 10.0 req/s, done")


def test_progress_line_never_divides_by_zero() -> None:
    line = progress_line("a", SyncProgress(sent=0, settled=0, total=0, requests=0, elapsed_s=0))
    assert line == "a: sent 0/0 participants (0 requests), 0.0 req/s, done"
