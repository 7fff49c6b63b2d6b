"""Pieces of a sync run that hold no policy, split from ``_engine``.

A batch in flight, the ledger worker threads, the GC freezer, and column helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ._batching import PlannedBatch, SyncParticipant
from ._columns import BatchMembers
from ._protocols import BatchRecord, BatchState, LedgerStore, OperationReport
from ._reports import BatchContext

_T = TypeVar("_T")


@dataclasses.dataclass(slots=True)
class RunBatch:
    """A batch while the run handles it."""

    record: BatchRecord
    members: BatchMembers
    participants: tuple[SyncParticipant, ...] | None
    sent_at: float | None = None
    held_at: float | None = None
    reports: list[OperationReport] = dataclasses.field(default_factory=list)
    resolved_by: str | None = None
    poll: asyncio.Task[OperationReport | None] | None = None
    planned_here: bool = False
    """Planned by this run: its people already passed the run's uniqueness check."""
    resend_decided: bool = False
    """``resend_ambiguous`` already re-sent it or recorded why not (once per run)."""

    @property
    def context(self) -> BatchContext:
        r = self.record
        return BatchContext(r.batch_id, r.audience, r.partition_key, r.campaign_id, r.resent)


class LedgerWorker:
    """Runs ledger calls one at a time on a worker thread, off the event loop.

    Outbox writes (claims, SENDING marks, answers) have a lane of their own: the marks gate
    every request, and queued behind a bulk write (a planned chunk, a flush of statuses)
    they would leave the pipe empty.

    A SENDING mark is written between a request's rate slot and its issue, so any time it
    spends waiting for the database (one connection, shared with the bulk writes) delays the
    request itself. While ``pace_bulk`` is on (sends in progress), a bulk call therefore starts
    right after a request was issued (``note_issued``), when the next mark is about one rate
    interval away, or after ``bulk_wait_s`` at the latest.
    """

    bulk_wait_s = 0.15
    """Longest wait of a bulk call for the moment after an issue."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-ledger")
        self._marks = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-ledger-mark")
        self.pace_bulk = False
        self._issued: asyncio.Future[None] | None = None

    async def __call__(self, fn: Callable[..., _T], *args: Any) -> _T:
        await self.quiet()
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def quiet(self) -> None:
        """While ``pace_bulk``: wait for the moment after an issue (at most ``bulk_wait_s``).

        Also for heavy work off the loop that is not a ledger call (building status rows,
        planning a chunk): it holds the GIL that the next mark and the loop need.
        """
        if not self.pace_bulk:
            return
        if self._issued is None or self._issued.done():
            self._issued = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._issued), self.bulk_wait_s)

    def note_issued(self) -> None:
        """A request was just issued: bulk calls waiting for that moment may start."""
        if self._issued is not None and not self._issued.done():
            self._issued.set_result(None)

    async def outbox(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run an outbox write in the lane of the claims and marks, in submission order.

        One lane for every outbox write keeps a batch's changes in the order they were made
        (an answer before the REPORTED mark after it), whatever thread asked.
        """
        return await asyncio.get_running_loop().run_in_executor(self._marks, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._marks.shutdown(wait=True)


class GcFreezer:
    """``gc.freeze`` for the length of a run (see ``SyncOptions.freeze_gc``)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        # Someone else froze objects before us (e.g. a caller that froze its input): leave
        # the permanent generation as we found it, frozen.
        self._unfreeze = enabled and gc.get_freeze_count() == 0

    def freeze(self) -> None:
        if self.enabled:
            gc.freeze()  # O(1): splices the generations onto the permanent one

    def release(self) -> None:
        if self._unfreeze:
            gc.unfreeze()


LIVE_STATES = (BatchState.SENDING, BatchState.SENT, BatchState.HELD)
"""States a later run resumes (their bodies may have left; CLAIMED ones never did)."""


def person_key_of(participant: SyncParticipant) -> str:
    return participant.person_key


def columns_of(plan: PlannedBatch) -> BatchMembers:
    return BatchMembers.from_members(plan.members)


def take_rows(members: BatchMembers, rows: list[int]) -> BatchMembers:
    """The given rows of ``members``, as columns of their own."""
    return BatchMembers(
        [members.batch_ids[i] for i in rows],
        [members.person_keys[i] for i in rows],
        [members.kinds[i] for i in rows],
        [members.identifiers[i] for i in rows],
        [members.is_identify_by[i] for i in rows],
        [members.anchors[i] for i in rows],
    )
