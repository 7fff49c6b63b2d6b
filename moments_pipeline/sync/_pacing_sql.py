"""The account's pacing state in a PostgreSQL row: one rate budget across hosts.

``FilePacingRecord`` (``infobip/_pacing_record``) shares an account's budget between the
processes of one host. Runs on several hosts (Dagster on Kubernetes, a run per pod) need a
meeting point they all reach: the ledger's PostgreSQL database will do. This record keeps the
state (the same JSON as the file) in one row per account of ``moments_pacing_record``; each
transaction of the budget takes the row with ``SELECT ... FOR UPDATE`` on a connection of its
own, so no two processes anywhere run the pacing algorithm on the account at once.

Clocks: every process keeps its own monotonic clock; the row holds the DATABASE's clock
(``clock_timestamp()``). Each transaction measures the offset between the two (half a round
trip of error, a few ms on a LAN) and converts times in and out, so hosts need not agree on
the time. Crashes: a reservation older than ``reservation_ttl_s`` (10 s) is dropped (process
ids mean nothing across hosts); the row lock dies with its connection.

Constraints: PostgreSQL only (DuckDB admits one process per file: use the file record there);
each transaction costs three round trips on the event loop's thread (about 1-3 ms on a LAN),
against microseconds for the file record; the connection is this record's alone, never the
ledger's (a long ledger write must not stall the pacing).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import orjson

from moments_pipeline.infobip import PacingRecordError, PacingState
from moments_pipeline.warehouse import Warehouse, WarehouseError

__all__ = ["PACING_TABLE", "SqlPacingRecord"]

PACING_TABLE = "moments_pacing_record"
"""The table (one row per account: its state as JSON, the database time of the last change)."""
_EMPTY = "{}"


class SqlPacingRecord:
    """One account's pacing state in a row of ``moments_pacing_record`` (PostgreSQL).

    Args:
        warehouse: A PostgreSQL warehouse whose connection this record uses alone.
        account_id: ``MomentsClientConfig.account_id`` (never the key itself).
        reservation_ttl_s: Age after which a reservation is presumed abandoned.
        clock: The budget's clock (``time.monotonic`` unless the budget has another).

    Raises:
        ValueError: The warehouse is not PostgreSQL.
    """

    def __init__(
        self,
        warehouse: Warehouse,
        account_id: str,
        *,
        reservation_ttl_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if warehouse.dialect != "postgres":
            raise ValueError("SqlPacingRecord needs PostgreSQL; DuckDB uses FilePacingRecord")
        if reservation_ttl_s <= 0:
            raise ValueError("reservation_ttl_s must be positive")
        self._wh = warehouse
        self.account_id = account_id
        self.reservation_ttl_s = reservation_ttl_s
        self._clock = clock
        self.discarded = 0
        self._wh.execute(
            "CREATE TABLE IF NOT EXISTS moments_pacing_record ("
            "account TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL)"
        )

    def __repr__(self) -> str:
        return f"SqlPacingRecord({self._wh!r}, {PACING_TABLE})"

    @contextlib.contextmanager
    def transaction(self, now: float) -> Iterator[PacingState]:
        """Lock the account's row, yield its state on the local clock, store it back."""
        try:
            with self._wh.transaction():
                self._wh.execute(
                    "INSERT INTO moments_pacing_record (account, state, updated_at) "
                    "VALUES (?, ?, 0) ON CONFLICT (account) DO NOTHING",
                    [self.account_id, _EMPTY],
                )
                [(raw, db_now)] = self._wh.fetch_all(
                    "SELECT state, extract(epoch FROM clock_timestamp())::float8 "
                    "FROM moments_pacing_record WHERE account = ? FOR UPDATE",
                    [self.account_id],
                )
                # local = db - offset: the database's clock read while the row was taken.
                offset = float(db_now) - self._clock()
                state = self._load(str(raw), float(db_now), offset)
                yield state
                local_now = self._clock()
                body = orjson.dumps(state.encode(local_now, offset)).decode()
                self._wh.execute(
                    "UPDATE moments_pacing_record SET state = ?, updated_at = ? WHERE account = ?",
                    [body, local_now + offset, self.account_id],
                )
        except WarehouseError as exc:
            raise PacingRecordError(f"the shared pacing record cannot be used: {exc}") from None

    def _load(self, raw: str, db_now: float, offset: float) -> PacingState:
        if raw == _EMPTY:
            return PacingState()
        try:
            state = PacingState.decode(orjson.loads(raw), -offset)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self.discarded += 1
            return PacingState()
        local_now = db_now - offset
        if state.implausible(local_now):  # a database clock set back, say
            self.discarded += 1
            return PacingState()
        horizon = local_now - self.reservation_ttl_s
        state.reservations = [r for r in state.reservations if r.at > horizon]
        return state
