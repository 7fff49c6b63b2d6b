"""Two connections racing for one lease on one DuckDB file: one wins, neither crashes.

DuckDB aborts one of two transactions that insert the same key at once (a write conflict or a
duplicate key) instead of letting ``ON CONFLICT DO NOTHING`` do nothing, which made the run
that lost the race fail instead of waiting for the lease.
"""

from __future__ import annotations

import threading
from pathlib import Path

from moments_pipeline.sync import SqlLedgerStore
from moments_pipeline.warehouse import DuckDBWarehouse


def _race(path: Path, scope: str) -> tuple[list[str], list[BaseException]]:
    """Two connections of one process take ``scope``'s lease at the same instant."""
    warehouses = [DuckDBWarehouse(path), DuckDBWarehouse(path)]
    stores = [SqlLedgerStore(w) for w in warehouses]
    barrier = threading.Barrier(2)
    holders: list[str] = []
    errors: list[BaseException] = []

    def take(i: int) -> None:
        barrier.wait()
        try:
            lease = stores[i].acquire_lease(
                scope, f"run-{i}", description="race", now=1000.0, ttl_s=6.0
            )
            holders.append(lease.holder)
        except BaseException as exc:  # the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in warehouses:
        w.close()
    return holders, errors


def test_two_connections_racing_for_a_lease_both_get_an_answer(tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    setup = DuckDBWarehouse(path)
    SqlLedgerStore(setup).ensure_schema()
    for r in range(200):
        holders, errors = _race(path, f"scope-{r}")
        assert errors == [], errors
        # Both see the same single holder: exactly one of them won.
        assert len(holders) == 2 and holders[0] == holders[1], holders
    setup.close()
