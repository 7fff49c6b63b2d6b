"""The send path of a run: claim, mark on the wire, issue, record the answer.

Each batch goes, in the ledger (every change checked by ``_states``):

1. PLANNED -> CLAIMED by this run (a compare-and-set: two runs never take one batch), before
   anything else;
2. CLAIMED -> SENDING inside the client, after the attempt's rate slot and right before the
   request is issued (``_Gate.before_issue``, the client's ``SendGate`` seam), so a crash before
   that point leaves the batch CLAIMED, and a later run (under the run lease) sends it again;
3. SENDING -> CLAIMED as soon as an answer proves the attempt was not processed (429, other
   4xx, connection refused before the body left: ``_Gate.not_processed``), before the client's
   retry pause, so a crash in that pause does not make it ambiguous either;
4. SENDING -> SENT / HELD / FAILED once answered (``record_answer``).

The invariant that bounds what a crash can make ambiguous (stated here, kept by ``_Gate``):

    An answer is durable before any request whose SENDING mark is written after the answer
    arrived is issued: the mark's transaction first writes every buffered answer.

So after a crash, a SENDING batch without an answer is a request that was issued (or, in the
gap between the mark's commit and the first byte, about to be) and whose answer had not been
recorded: what the next run holds as ``SENDING_AT_CRASH``. Answers also reach the ledger at
the run's periodic flush when no request follows them.

An operator's re-send (``resend_ambiguous``) takes a HELD batch straight to SENDING (its earlier
send may have landed, so the row must keep saying "may have left"), flags it ``resent`` with
``resent_at``, and its outcome replaces the HELD state; a refusal is recorded in words.

``probe`` is an optional callable ``(point, batch_id)`` the engine's owner may pass (a test's
crash runner kills the process at one); the points are the ``PROBE_*`` names below.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

from ._batching import UniquenessGuard
from ._clock import Clock
from ._options import SyncOptions
from ._protocols import (
    BatchRecord,
    BatchState,
    FlowDestination,
    SendKind,
    SendOutcome,
)
from ._result import HeldBatch, SyncResult
from ._run_parts import LedgerWorker, RunBatch
from ._states import check_transition

Probe = Callable[[str, str], None]

PROBE_CLAIMED = "claimed"
"""The claim is committed; nothing else happened yet."""
PROBE_SLOT = "slot_acquired"
"""The attempt holds its rate slot; the SENDING mark is not written yet."""
PROBE_ON_WIRE = "on_wire"
"""The SENDING mark is committed; the request is issued right after."""
PROBE_NOT_PROCESSED = "not_processed"
"""An attempt was answered "not processed" and is back to CLAIMED (e.g. before a 429 pause)."""
PROBE_ANSWERED = "answered"
"""The answer arrived; it is not recorded yet."""
PROBE_RECORDED = "recorded"
"""Buffered answers were just written by the run's flush."""

CLAIMED_BY_ANOTHER_RUN = "CLAIMED_BY_ANOTHER_RUN"
"""Reason of a batch whose claim or SENDING mark found it taken: another run has it."""


class ClaimLost(Exception):
    """The SENDING mark found the batch no longer claimed by this run: issue nothing."""


def change(batch: RunBatch, new: BatchState, **fields: Any) -> BatchRecord:
    """Move a batch of the run to ``new`` (checked by the transition table); return the record."""
    check_transition(batch.record.state, new, batch.record.batch_id)
    batch.record = dataclasses.replace(batch.record, state=new, **fields)
    return batch.record


class Sender:
    """Claims, marks and records the sends of one run; see the module docstring.

    Args:
        destination: where requests go.
        db: the run's ledger worker (outbox writes go through its ordered ``outbox`` lane).
        run_id: this run's lease holder id, written as ``claimed_by``.
        campaign: the flow.
        options: the run's knobs.
        clock: the engine's clock.
        result: the run's result (counts, skipped batches).
        probe: optional crash probe ``(point, batch_id)``.
    """

    def __init__(
        self,
        *,
        destination: FlowDestination,
        db: LedgerWorker,
        run_id: str,
        campaign: int,
        options: SyncOptions,
        clock: Clock,
        result: SyncResult,
        probe: Probe | None = None,
    ) -> None:
        self.destination = destination
        self.db = db
        self.run_id = run_id
        self.campaign = campaign
        self.opts = options
        self.clock = clock
        self.result = result
        self._probe = probe
        self.answers: list[BatchRecord] = []
        """Answers (and other send-side changes) recorded in memory, in order, not yet durable."""

    def probe(self, point: str, batch_id: str) -> None:
        if self._probe is not None:
            self._probe(point, batch_id)

    def take_answers(self) -> list[BatchRecord]:
        """Hand the buffered answers to a writer (it puts them back if the write fails)."""
        answers, self.answers = self.answers, []
        return answers

    def buffer(self, record: BatchRecord) -> None:
        self.answers.append(record)

    async def write_answers(self) -> None:
        """Make the buffered answers durable now (the run's flush)."""
        answers = self.take_answers()
        if not answers:
            return
        try:
            await self.db.outbox(self.db.store.update_batches, answers)
        except BaseException:
            self.answers[:0] = answers
            raise
        self.probe(PROBE_RECORDED, answers[-1].batch_id)

    # -- one batch --------------------------------------------------------------------------

    async def claim(self, batch: RunBatch, *, resend: bool) -> bool:
        """Claim a PLANNED batch (or, for a re-send, take a HELD one to SENDING); durable.

        False when another run has it (recorded as skipped).
        """
        batch_id = batch.record.batch_id
        if resend:
            # Its HELD answer may still be buffered: written first, in the same transaction.
            answers = self.take_answers()
            mark = functools.partial(
                self.db.store.mark_sending,
                batch_id,
                (BatchState.HELD,),
                answers=answers,
                resend=True,
            )
            try:
                taken = await self.db.outbox(mark)
            except BaseException:
                self.answers[:0] = answers
                raise
            if taken:
                change(batch, BatchState.SENDING, resent=True)
        else:
            taken = await self.db.outbox(self.db.store.claim_batch, batch_id, self.run_id)
            if taken:
                change(batch, BatchState.CLAIMED, claimed_by=self.run_id)
        if not taken:
            self.skip(batch)
            return False
        self.probe(PROBE_CLAIMED, batch_id)
        return True

    async def send_once(self, batch: RunBatch, *, resend: bool) -> SendOutcome:
        """One ``destination.send`` through a gate; what is known of its fate.

        An exception from the destination is AMBIGUOUS only if a request was issued; one that
        came before any issue (the gate's own failure) means nothing left.
        """
        assert batch.participants is not None
        gate = _Gate(self, batch, resend=resend)
        bodies = [p.body for p in batch.participants]
        try:
            outcome = await self.destination.send(
                self.campaign, bodies, callback_data=batch.record.batch_id, gate=gate
            )
        except ClaimLost:
            return SendOutcome(SendKind.NOT_SENT, reason=CLAIMED_BY_ANOTHER_RUN)
        except Exception as exc:  # noqa: BLE001 - the body may have left: assume nothing
            if gate.on_wire or resend:
                return SendOutcome(SendKind.AMBIGUOUS, reason=f"UNEXPECTED:{type(exc).__name__}")
            return SendOutcome(SendKind.NOT_SENT, reason=f"NOT_ISSUED:{type(exc).__name__}")
        self.probe(PROBE_ANSWERED, batch.record.batch_id)
        if outcome.kind in (SendKind.SENT, SendKind.AMBIGUOUS) or resend:
            return outcome
        # Not processed. A destination that does not call the gate leaves the mark standing:
        # take it back now, durably, before anything else (a retry pause, the next claim).
        await gate.not_processed()
        return outcome

    def record_answer(self, batch: RunBatch, outcome: SendOutcome, *, resend: bool) -> None:
        """Record a SENT, AMBIGUOUS or REFUSED answer (buffered: see the module invariant)."""
        now = self.clock.now()
        self.result.batches_sent += 1
        if outcome.kind is SendKind.SENT:
            change(batch, BatchState.SENT, operation_id=outcome.operation_id, reason=None)
            batch.sent_at = now
        elif outcome.kind is SendKind.AMBIGUOUS:
            reason = outcome.reason
            if resend:
                reason = f"re-send ambiguous ({outcome.reason}); before: {batch.record.reason}"
            change(batch, BatchState.HELD, reason=reason)
            batch.held_at = now
        else:  # REFUSED before processing: nothing was queued, a repeat would be refused too
            change(batch, BatchState.FAILED, reason=outcome.reason)
            batch.resolved_by = "refused"
        self.buffer(batch.record)

    def left_unsent(self, batch: RunBatch, *, resend: bool, reason: str | None) -> None:
        """Known not processed: a first send is released to PLANNED, a re-send stays HELD."""
        if resend:
            batch.held_at = float("-inf")  # not re-sent again by this run
            earlier = batch.record.reason
            if batch.record.state is BatchState.SENDING:
                reason = f"re-send not processed ({reason}); {earlier}"
                change(batch, BatchState.HELD, reason=reason)
                self.buffer(batch.record)
            batch.participants = None
            return
        if batch.record.state is BatchState.CLAIMED:
            change(batch, BatchState.PLANNED, reason=reason, claimed_by=None)
            self.buffer(batch.record)

    def skip(self, batch: RunBatch) -> None:
        """Drop a batch another run claimed: its record and its people are that run's."""
        batch.resolved_by = "skipped"
        record = batch.record
        self.result.skipped_batches.append(
            HeldBatch(record.batch_id, record.size, record.state.value, CLAIMED_BY_ANOTHER_RUN)
        )

    # -- operator's re-send -----------------------------------------------------------------

    def resend_refusal(self, batch: RunBatch, guard: UniquenessGuard, checked: bool) -> str | None:
        """Why a HELD batch may not be re-sent now (in words), or None when it may.

        ``checked``: its people already passed this run's uniqueness check (it was planned by
        this run); checking them again would find them "twice in the input".
        """
        record = batch.record
        if batch.participants is None:
            return (
                f"re-send refused: batch {record.batch_id} has people missing from this run's "
                "input, and a body is rebuilt only from the input"
            )
        if checked:
            return None
        try:
            guard.check(batch.participants)
        except ValueError as exc:  # the message masks identifiers
            return f"re-send refused: batch {record.batch_id}: {exc}"
        return None


class _Gate:
    """The client's ``SendGate`` for one batch: the durable marks around each attempt."""

    def __init__(self, sender: Sender, batch: RunBatch, *, resend: bool) -> None:
        self.sender = sender
        self.batch = batch
        self.resend = resend
        self.on_wire = False

    async def before_issue(self) -> None:
        sender, batch = self.sender, self.batch
        batch_id = batch.record.batch_id
        sender.probe(PROBE_SLOT, batch_id)
        answers = sender.take_answers()  # the invariant: they are durable before this issue
        store = sender.db.store
        try:
            if self.resend:  # already SENDING since its claim
                if answers:
                    await sender.db.outbox(store.update_batches, answers)
                marked = True
            else:
                mark = functools.partial(
                    store.mark_sending,
                    batch_id,
                    (BatchState.CLAIMED,),
                    claimed_by=sender.run_id,
                    answers=answers,
                )
                marked = await sender.db.outbox(mark)
        except BaseException:
            sender.answers[:0] = answers
            raise
        # (No PROBE_RECORDED here: these answers and the mark are one transaction, so the
        # point after it is PROBE_ON_WIRE.)
        if not marked:
            raise ClaimLost(batch_id)
        if not self.resend:
            change(batch, BatchState.SENDING)
        self.on_wire = True
        sender.probe(PROBE_ON_WIRE, batch_id)
        sender.db.note_issued()  # the quiet moment for bulk ledger work (see LedgerWorker)

    async def not_processed(self) -> None:
        sender, batch = self.sender, self.batch
        if self.resend or batch.record.state is not BatchState.SENDING:
            return  # a re-send stays "may have left": its earlier send may have landed
        await sender.db.outbox(sender.db.store.unmark_sending, batch.record.batch_id, sender.run_id)
        change(batch, BatchState.CLAIMED)
        self.on_wire = False
        sender.probe(PROBE_NOT_PROCESSED, batch.record.batch_id)
