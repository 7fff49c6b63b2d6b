"""The run lease: one sync run at a time per scope of a shared ledger.

Two runs syncing the same partition at once would each plan, mark and send the same people
(Infobip has no idempotency key), and two runs of different audiences would each check the
identity ledger before the other's sends land in it. The lease is a row in the shared ledger,
taken atomically (the ledger's compare-and-set), holding the run id and an expiry that a
background task renews while the run lives. A second run waits up to ``lease_wait_s`` and then
fails with ``LeaseHeldError`` naming the holder; a crashed run's lease expires and is taken
over. Expiries are wall-clock epoch seconds, so machines sharing a ledger need clocks in sync
to well within the lease's lifetime (NTP gives milliseconds; the default lifetime is 60 s).
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Callable

from ._clock import Clock
from ._errors import LeaseHeldError, LeaseLostError
from ._options import SyncOptions
from ._protocols import LedgerStore


def new_run_id() -> str:
    """A run id naming the machine and process: ``<host>/<pid>/<random>``."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:12]}"


class RunLease:
    """Acquire, keep alive and release one run's lease.

    Args:
        store: the shared ledger.
        holder: this run's id.
        description: what this run syncs (shown to a run that finds the lease taken).
        options: ``lease_scope``, ``lease_ttl_s``, ``lease_wait_s``, ``lease_poll_s``.
        clock: the engine's clock, for waiting.
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
        self.wait_s = options.lease_wait_s
        self.poll_s = options.lease_poll_s
        self.clock = clock
        self.wall_clock = wall_clock
        self.held = False
        self.expires_at = 0.0

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
            await self.clock.sleep(min(self.poll_s, self.wait_s - waited))

    async def keep_alive(self, on_lost: Callable[[Exception], None]) -> None:
        """Renew the lease every third of its lifetime until cancelled; report a loss."""
        while True:
            await self.clock.sleep(self.ttl_s / 3)
            now = self.wall_clock()
            try:
                renewed = await asyncio.to_thread(
                    self.store.renew_lease, self.scope, self.holder, now=now, ttl_s=self.ttl_s
                )
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - retried while the lease has not expired
                renewed = self.wall_clock() < self.expires_at
                if renewed:
                    continue
            if renewed:
                self.expires_at = now + self.ttl_s
            else:
                self.held = False
                on_lost(LeaseLostError(self.scope, self.holder))
                return

    def release(self) -> None:
        """Give the lease up (blocking; called once the run's ledger work is done)."""
        if self.held:
            self.held = False
            self.store.release_lease(self.scope, self.holder)
