"""The run lease: one sync run at a time per scope of a shared ledger, freed within seconds.

Two runs syncing the same partition at once would each plan, mark and send the same people
(Infobip has no idempotency key), and two runs of different audiences would each check the
identity ledger before the other's sends land in it. The lease is a row in the shared ledger,
taken atomically (the ledger's ``INSERT ... ON CONFLICT DO NOTHING`` then a conditional
``UPDATE`` that takes over only an expired lease, on DuckDB and PostgreSQL alike), holding the
run id and a short expiry (``lease_ttl_s``, default 6 s).

A heartbeat keeps it: a thread of its own (not a task of the engine's event loop, so a busy
loop does not starve it) renews the expiry every ``lease_renew_s`` (default a quarter of it) with a
conditional ``UPDATE ... WHERE holder = <this run>``. A run killed with ``kill -9`` stops
beating, and its lease is free to the next run within ``lease_ttl_s`` of its last beat.

A live run that stalls (a GC pause, a slow warehouse holding the connection) must not send
under a lease it may have lost: before each SENDING claim the engine asks ``claimable()``,
which answers True only while the lease is known valid for at least one more heartbeat
interval; while it is not, the claim waits for the heartbeat, and once the expiry passes
without a renewal the lease is lost for good (``LeaseLostError``) and the run stops sending.
A renewal that finds another holder (or none) is a loss too.

Expiries are wall-clock epoch seconds, so machines sharing a ledger need clocks in sync to
well within ``lease_ttl_s`` (NTP gives milliseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Callable

from ._clock import Clock
from ._errors import LeaseHeldError, LeaseLostError
from ._options import SyncOptions
from ._protocols import LedgerStore

_CLAIM_POLL_S = 0.05
"""How often a claim waiting for the heartbeat looks at the lease again."""


def new_run_id() -> str:
    """A run id naming the machine and process: ``<host>/<pid>/<random>``."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:12]}"


class RunLease:
    """Acquire, keep alive (heartbeat thread) and release one run's lease.

    Args:
        store: the shared ledger.
        holder: this run's id.
        description: what this run syncs (shown to a run that finds the lease taken).
        options: ``lease_scope``, ``lease_ttl_s``, ``lease_renew_s``, ``lease_wait_s``,
            ``lease_poll_s``.
        clock: the engine's clock, for waiting to acquire.
        wall_clock: epoch seconds, for expiries every machine agrees on.
    """

    def __init__(
        self,
        store: LedgerStore,
        *,
        holder: str,
        description: str,
        options: SyncOptions,
        clock: Clock,
        wall_clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.holder = holder
        self.description = description
        self.scope = options.lease_scope
        self.ttl_s = options.lease_ttl_s
        self.renew_s = options.renew_interval_s
        self.wait_s = options.lease_wait_s
        self.poll_s = options.lease_poll_s
        self.clock = clock
        self.wall_clock = wall_clock
        self.held = False
        self.lost = False
        self.expires_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    async def acquire(self) -> None:
        """Take the lease, waiting up to ``lease_wait_s``.

        Raises:
            LeaseHeldError: another live run holds it beyond the wait.
        """
        started = self.clock.now()
        while True:
            lease = await asyncio.to_thread(
                self.store.acquire_lease,
                self.scope,
                self.holder,
                description=self.description,
                now=self.wall_clock(),
                ttl_s=self.ttl_s,
            )
            if lease.holder == self.holder:
                self.held, self.expires_at = True, lease.expires_at
                return
            waited = self.clock.now() - started
            if waited >= self.wait_s:
                raise LeaseHeldError(
                    lease.scope, lease.holder, lease.description, lease.expires_at, waited
                )
            # Never later than the holder's expiry: a dead run's lease is taken at once.
            until_expiry = max(lease.expires_at - self.wall_clock(), 0.0) + 0.01
            await self.clock.sleep(min(self.poll_s, until_expiry, self.wait_s - waited))

    def start_heartbeat(self, on_lost: Callable[[Exception], None]) -> None:
        """Renew the lease from a thread until ``stop_heartbeat``; report a loss on this loop.

        ``on_lost`` runs on the calling event loop (thread-safe hand-over), once.
        """
        loop = asyncio.get_running_loop()

        def report() -> None:
            # A closed loop (RuntimeError) means the run is over anyway.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(on_lost, LeaseLostError(self.scope, self.holder))

        self._thread = threading.Thread(
            target=self._beat, args=(report,), name="sync-lease-heartbeat", daemon=True
        )
        self._thread.start()

    def _beat(self, report: Callable[[], None]) -> None:
        while not self._stop.wait(self.renew_s):
            now = self.wall_clock()
            try:
                renewed = self.store.renew_lease(self.scope, self.holder, now=now, ttl_s=self.ttl_s)
            except Exception:  # noqa: BLE001 - retried at the next beat while not expired
                if self.wall_clock() < self.expires_at:
                    continue
                renewed = False
            if self._stop.is_set():
                return
            if renewed and not self.lost:
                self.expires_at = max(self.expires_at, now + self.ttl_s)
                continue
            self.lost = True
            report()
            return

    async def claimable(self) -> bool:
        """True while the lease is valid for at least one more heartbeat interval.

        Waits (for the heartbeat) while it is still valid but not for that long; False, for
        good, once it has expired without a renewal or the heartbeat found it taken.
        """
        while not self.lost:
            left = self.expires_at - self.wall_clock()
            if left > self.renew_s:
                return True
            if left <= 0:
                self.lost = True
                break
            await asyncio.sleep(min(_CLAIM_POLL_S, left))
        return False

    def stop_heartbeat(self) -> None:
        """Stop renewing (blocking until the heartbeat thread has finished its beat)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def release(self) -> None:
        """Give the lease up (blocking; called once the run's ledger work is done)."""
        self.stop_heartbeat()
        if self.held:
            self.held = False
            # Conditional on the holder: a lost lease another run has taken is left alone.
            self.store.release_lease(self.scope, self.holder)
