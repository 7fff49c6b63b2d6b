"""What a run takes over from earlier runs, and the record it leaves for later ones.

``resume_partition``: under the run lease, the partition's earlier batches are taken over.
Batches that never left (PLANNED, and CLAIMED ones: under the lease a claim of another run id
is a dead run's) are forgotten and their people planned again from the current input; SENDING
ones (on the wire, no answer recorded) become HELD (``SENDING_AT_CRASH``); SENT and HELD ones
are followed up (reports, callbacks). ``finish_run``: the status record of every batch the
run ends without a final report for, and the run's counts. Functions of the engine's run
state (``_engine._Run``), split from it so that module is about the loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ._batching import SyncParticipant
from ._columns import BatchMembers
from ._protocols import BatchRecord, BatchState, StatusRow
from ._record import count_rows, unresolved_rows
from ._result import HeldBatch
from ._run_parts import LIVE_STATES, RunBatch, person_key_of, take_rows
from ._states import NEVER_LEFT, STATUS_TRANSITIONS, check_transition

if TYPE_CHECKING:
    from ._engine import _Run

SENDING_AT_CRASH = "SENDING_AT_CRASH"
"""Reason of a batch found SENDING by a later run: its request may have left."""

_STATUS_PAIRS = {(o.value if o else None, n.value) for o, n in STATUS_TRANSITIONS}


def bodies_from_input(
    body_by_key: Mapping[str, SyncParticipant], members: BatchMembers
) -> tuple[SyncParticipant, ...] | None:
    """Rebuild a batch's bodies from the current input (None if someone is missing)."""
    keys = sorted(set(members.person_keys))
    bodies = [body_by_key.get(k) for k in keys]
    if any(b is None for b in bodies):
        return None
    return tuple(b for b in bodies if b is not None)


async def resume_partition(
    run: _Run, participants: Sequence[SyncParticipant]
) -> tuple[list[SyncParticipant], set[str]]:
    """Take over the partition's earlier batches.

    Returns who is left to send (sorted) and the batch ids already taken.
    """
    db, store = run.db, run.db.store
    run.body_by_key = {p.person_key: p for p in participants}
    existing = await db(store.batches, run.audience, run.partition, run.campaign)
    # Never left: forget them and plan again from the current input. A CLAIMED batch is a
    # dead run's claim (we hold the lease, so no live run has one): released, then gone.
    for b in existing:
        if b.state is BatchState.CLAIMED:
            check_transition(b.state, BatchState.PLANNED, b.batch_id)
    stale = [b.batch_id for b in existing if b.state in NEVER_LEFT]
    if stale:
        await db.outbox(store.discard_planned, stale)
    live = [b for b in existing if b.state in LIVE_STATES]
    members = BatchMembers.from_members(await db(store.batch_members, [b.batch_id for b in live]))
    rows_of: dict[str, list[int]] = {b.batch_id: [] for b in live}
    for index, batch_id in enumerate(members.batch_ids):
        rows_of[batch_id].append(index)
    by_batch = {b: take_rows(members, rows) for b, rows in rows_of.items()}
    claimed = set(members.person_keys)
    crashed: list[BatchRecord] = []
    for record in live:
        if record.state is BatchState.SENDING:  # on the wire, no answer recorded
            check_transition(record.state, BatchState.HELD, record.batch_id)
            record = dataclasses.replace(record, state=BatchState.HELD, reason=SENDING_AT_CRASH)
            crashed.append(record)
        rows = by_batch[record.batch_id]
        batch = RunBatch(record, rows, bodies_from_input(run.body_by_key, rows))
        if record.state is BatchState.HELD:
            batch.held_at = float("-inf")  # held by an earlier run: no grace left
        run.batches[record.batch_id] = batch
        run.resumed.add(record.batch_id)
    if crashed:
        ids = [r.batch_id for r in crashed]
        held = set(await db.outbox(store.hold_unanswered, ids, SENDING_AT_CRASH))
        for batch_id in ids:
            if batch_id not in held:  # answered meanwhile: a live run's, not ours to hold
                run.sender.skip(run.batches[batch_id])
    delivered = await db(store.delivered_person_keys, run.campaign)
    to_send = []
    for p in participants:
        if p.person_key in claimed:
            continue
        if p.person_key in delivered:
            run.result.already_delivered += 1
        else:
            to_send.append(p)
    run.result.participants_in = len(participants)
    run.result.delivered = run.result.already_delivered
    to_send.sort(key=person_key_of)
    return to_send, {b.batch_id for b in existing if b.batch_id not in stale}


async def finish_run(run: _Run) -> None:
    """Cancel what is left, flush, and write the record of every batch left unresolved."""
    for task in list(run.send_tasks):
        task.cancel()
    for batch in run.batches.values():
        if batch.poll is not None:
            batch.poll.cancel()
            batch.poll = None
    await run._flush()
    final_rows: list[StatusRow] = []
    result = run.result
    result.batches_planned = len(run.batches)
    for batch in run.batches.values():
        record = batch.record
        if batch.resolved_by == "skipped":
            continue  # another run's batch: its record and statuses are that run's
        if record.operation_id:
            result.operation_ids.append(record.operation_id)
        if batch.resolved_by == "callback":
            result.reports_by_callback += 1
        elif batch.resolved_by == "polling":
            result.reports_by_polling += 1
        if batch.resolved_by not in ("callback", "polling"):
            final_rows.extend(unresolved_rows(batch))
        if record.state in (BatchState.HELD, BatchState.PLANNED, BatchState.CLAIMED):
            result.held_batches.append(
                HeldBatch(record.batch_id, record.size, record.state.value, record.reason or "")
            )
    final_rows, settled = await _unsettled(run, final_rows)
    count_rows(result, [*final_rows, *settled], run.batches, run.opts.rejected_samples)
    if final_rows:
        await run.db(run.db.store.upsert_statuses, final_rows)


async def _unsettled(run: _Run, rows: list[StatusRow]) -> tuple[list[StatusRow], list[StatusRow]]:
    """Split the rows of unresolved batches into those to write and stored settled ones.

    A person another run has settled meanwhile (ACCEPTED: only possible without a common
    lease) keeps that record: the transition table forbids overwriting it with HELD.
    """
    if not rows:
        return rows, []
    stored = await run.db(run.db.store.statuses, run.campaign, [r.person_key for r in rows])
    by_key = {r.person_key: r for r in stored}
    keep: list[StatusRow] = []
    settled: list[StatusRow] = []
    for row in rows:
        old = by_key.get(row.person_key)
        if old is not None and (old.status, row.status) not in _STATUS_PAIRS:
            settled.append(old)
        else:
            keep.append(row)
    return keep, settled
