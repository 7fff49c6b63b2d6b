"""Pieces of a sync run that hold no policy, split from ``_engine``.

A batch in flight, the ledger worker threads, the GC freezer, and column helpers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
from collections.abc import Callable, Sequence
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

    @property
    def context(self) -> BatchContext:
        r = self.record
        return BatchContext(r.batch_id, r.audience, r.partition_key, r.campaign_id, r.resent)


class LedgerWorker:
    """Runs ledger calls one at a time on a worker thread, off the event loop.

    SENDING marks have a worker of their own: they gate every request, and queued behind a
    bulk write (a planned chunk, a flush of statuses) they would leave the pipe empty.
    """

    def __init__(self, store: LedgerStore) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-ledger")
        self._marks = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-ledger-mark")

    async def __call__(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def mark_sending(self, batch_id: str, expected: Sequence[BatchState]) -> bool:
        return await asyncio.get_running_loop().run_in_executor(
            self._marks, self.store.mark_sending, batch_id, expected
        )

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
