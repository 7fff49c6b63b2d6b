"""Report collection of a sync run: callbacks absorbed, late reports polled, answers flushed.

The part of ``_engine``'s run that follows the sends: each SENT batch waits for its report,
preferably by notifyUrl callback (no request spent from the account's 10 req/s), by polling only
after the callback grace, all within the report deadline; HELD batches wait for a callback whose
claim Infobip's own report confirms (``_callbacks.ReportScreen``), or for an operator's re-send.
Resolved batches become status rows on a worker thread and reach the ledger in the flush, in
the order that keeps a crash safe (answers, then statuses, then REPORTED marks).

A mixin of the engine's ``_Run``: it reads and changes the run's state declared below and calls
back ``_stop`` and ``_spawn_send``. Logs nothing (the engine never logs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ._batching import UniquenessGuard
from ._callbacks import ReportScreen
from ._clock import Clock
from ._errors import DestinationStoppedError, stop_for_reports
from ._options import SyncOptions
from ._protocols import BatchRecord, BatchState, FlowDestination, OperationReport, StatusRow
from ._record import count_rows
from ._reports import statuses_from_reports
from ._result import SyncResult
from ._run_parts import GcFreezer, LedgerWorker, RunBatch
from ._send import Sender, change

__all__ = ["ReportCollection"]

_OUTSTANDING = (BatchState.SENT, BatchState.HELD)
"""States of a batch waiting for its report (or for a callback naming its operation)."""


class ReportCollection:
    """The reports half of a sync run (see the module docstring)."""

    destination: FlowDestination
    opts: SyncOptions
    clock: Clock
    db: LedgerWorker
    sender: Sender
    screen: ReportScreen
    result: SyncResult
    guard: UniquenessGuard
    gc: GcFreezer
    campaign: int
    batches: dict[str, RunBatch]
    pending_updates: dict[str, BatchRecord]
    pending_statuses: list[StatusRow]
    to_report: list[RunBatch]
    poll_slots: asyncio.Semaphore
    send_tasks: set[asyncio.Task[None]]
    planner: asyncio.Task[None] | None
    stopped: Exception | None
    resumed: set[str]
    last_flush: float
    sends_done_at: float | None

    def _stop(self, reason: Exception) -> None:
        raise NotImplementedError

    def _spawn_send(self, batch: RunBatch, *, resend: bool = False) -> None:
        raise NotImplementedError

    def _outstanding(self) -> list[RunBatch]:
        return [
            b
            for b in self.batches.values()
            if b.resolved_by is None and b.record.state in (BatchState.SENT, BatchState.HELD)
        ]

    async def _collect(self) -> None:
        """Absorb callbacks, poll late reports, resend or hold ambiguous batches, flush."""
        deadline: float | None = None
        while True:
            now = self.clock.now()
            if self.stopped is not None and not self.send_tasks:
                return  # nothing more will be sent; SENT batches are finished by a later run
            # Bulk ledger work waits for the moment after an issue while sends go on.
            self.db.pace_bulk = self._sending_active()
            if not self._sending_active() and deadline is None:
                deadline = now + self.opts.report_deadline_s
                self.sends_done_at = now
            await self._absorb_callbacks()
            self._handle_ambiguous(now)
            self._start_polls(now, deadline)
            if now - self.last_flush >= self.opts.flush_interval_s:
                await self._flush()
            waiting = [b for b in self._outstanding() if b.record.state is BatchState.SENT]
            waiting += [b for b in self._outstanding() if self._may_still_resolve(b, now)]
            if not self._sending_active() and not waiting:
                return
            if deadline is not None and now >= deadline:
                return
            await self.clock.sleep(self.opts.check_interval_s)

    def _sending_active(self) -> bool:
        return bool(self.send_tasks) or (self.planner is not None and not self.planner.done())

    def _may_still_resolve(self, batch: RunBatch, now: float) -> bool:
        """A HELD batch is worth waiting for while its callback grace lasts."""
        if batch.record.state is not BatchState.HELD or self.destination.notify_url is None:
            return False
        return batch.held_at is not None and now - batch.held_at < self.opts.callback_grace_s

    async def _absorb_callbacks(self) -> None:
        """Apply received reports, only those of each batch's own operation (``_callbacks``)."""
        outstanding = {b.record.batch_id: b for b in self._outstanding()}
        if not outstanding:
            return
        received = await self.db(self.db.store.callbacks, list(outstanding))
        for batch_id, stored in received.items():
            batch = outstanding[batch_id]
            if batch.resolved_by is not None or batch.record.state not in _OUTSTANDING:
                continue  # resolved by a poll, or being re-sent, while the ledger was read
            if batch.record.state is BatchState.HELD:
                # A genuine callback proves the ambiguous send was queued and names it; that it
                # is genuine, only Infobip's own report for the operationId it names can say.
                claimed = await self.screen.confirmed_claim(batch_id, stored, self._fetch_claim)
                if claimed is None or batch.record.state is not BatchState.HELD:
                    continue
                # An answer about the send: in the answers' lane, before any REPORTED mark.
                self.sender.buffer(change(batch, BatchState.SENT, operation_id=claimed))
                batch.sent_at = self.clock.now()
            reports = self.screen.matching(batch_id, batch.record.operation_id, stored)
            if not reports:
                continue
            batch.reports = reports
            self._stop_on_reports(batch, reports)
            if all(r.is_final for r in reports):
                self._resolve(batch, "callback")

    async def _fetch_claim(self, operation_id: str) -> OperationReport | None:
        # One look is enough (a PENDING report proves the claim too): keep the loop moving.
        async with self.poll_slots:
            return await self.destination.fetch_report(
                self.campaign, operation_id, timeout_s=min(self.opts.poll_timeout_s, 1.0)
            )

    def _handle_ambiguous(self, now: float) -> None:
        """With ``resend_ambiguous``: re-send each HELD batch once, or say in words why not."""
        if not self.opts.resend_ambiguous or self.stopped is not None:
            return
        for batch in self._outstanding():
            if batch.record.state is not BatchState.HELD or batch.resend_decided:
                continue
            if self._may_still_resolve(batch, now):
                continue
            batch.resend_decided = True
            refusal = self.sender.resend_refusal(batch, self.guard, batch.planned_here)
            if refusal is not None:  # e.g. an identifier now belongs to someone else
                batch.participants = None
                earlier = batch.record.reason
                change(batch, BatchState.HELD, reason=f"{refusal}; held because: {earlier}")
                self.pending_updates[batch.record.batch_id] = batch.record
                continue
            batch.held_at = None
            self._spawn_send(batch, resend=True)

    def _start_polls(self, now: float, deadline: float | None) -> None:
        grace = self.opts.callback_grace_s if self.destination.notify_url else 0.0
        for batch in self._outstanding():
            if batch.record.state is not BatchState.SENT or batch.poll is not None:
                continue
            if batch.sent_at is not None and now - batch.sent_at < grace:
                continue
            limit = self.opts.poll_timeout_s
            if deadline is not None:
                limit = min(limit, max(deadline - now, 0.0))
            batch.poll = asyncio.create_task(self._poll(batch, limit))

    async def _poll(self, batch: RunBatch, timeout_s: float) -> OperationReport | None:
        operation_id = batch.record.operation_id
        assert operation_id is not None
        async with self.poll_slots:
            try:
                report = await self.destination.fetch_report(
                    self.campaign, operation_id, timeout_s=timeout_s
                )
            except asyncio.CancelledError:
                raise
            except DestinationStoppedError as stop:  # the key was refused: nothing can succeed
                report = None
                self._stop(stop)
            except Exception:  # noqa: BLE001 - a failed poll is retried until the deadline
                report = None
        if report is not None:
            self._stop_on_reports(batch, [report])
        if batch.resolved_by is None and report is not None:
            batch.reports = [*[r for r in batch.reports if r.operation_id != operation_id], report]
            if report.is_final:
                self._resolve(batch, "polling")
        batch.poll = None
        return report

    def _stop_on_reports(self, batch: RunBatch, reports: Sequence[OperationReport]) -> None:
        """Out of credits (a verdict says so): no later batch can be accepted either.

        Only batches this run sent count: an earlier run's may have run out before a top-up.
        """
        if batch.record.batch_id in self.resumed:
            return
        stop = stop_for_reports(reports, self.campaign)
        if stop is not None:
            self._stop(stop)

    def _resolve(self, batch: RunBatch, how: str) -> None:
        if batch.resolved_by is not None:
            # Already resolved (a poll finished while callbacks were being read): once only,
            # or its people would be counted twice (and REPORTED -> REPORTED is no transition).
            return
        batch.resolved_by = how
        if batch.poll is not None and how == "callback":
            batch.poll.cancel()
            batch.poll = None
        self.pending_updates[batch.record.batch_id] = change(batch, BatchState.REPORTED)
        # Turned into status rows at the next flush, on a worker thread: a thousand rows per
        # batch, built on the event loop, would delay the sends that are due.
        self.to_report.append(batch)

    def _report_rows(self, batches: list[RunBatch]) -> list[StatusRow]:
        """Status rows of resolved batches, counted; runs on a worker thread."""
        rows: list[StatusRow] = []
        for batch in batches:
            batch_rows = statuses_from_reports(batch.context, batch.members, batch.reports)
            batch.reports = []  # a thousand verdicts per batch: the status rows now hold them
            count_rows(self.result, batch_rows, self.batches, self.opts.rejected_samples)
            rows += batch_rows
        return rows

    async def _flush(self) -> None:
        self.last_flush = self.clock.now()
        # Received reports (the receiver keeps its own copies) and the plan accumulate for the
        # whole run: keep them out of the full collections that would otherwise stall sends.
        self.gc.freeze()
        # Take everything buffered before the first await: sends finishing meanwhile buffer
        # into fresh containers for the next flush.
        updates = list(self.pending_updates.values())
        resolved, self.to_report = self.to_report, []
        statuses = self.pending_statuses
        self.pending_updates, self.pending_statuses = {}, []
        # Answers first (those no later SENDING mark has carried yet): a REPORTED mark below
        # must find its batch SENT.
        await self.sender.write_answers()
        if resolved:
            await self.db.quiet()
            statuses += await asyncio.to_thread(self._report_rows, resolved)
        # Statuses before the REPORTED marks: a crash in between leaves the batch SENT, and a
        # later run fetches its report again, instead of a REPORTED batch without statuses.
        if statuses:
            await self.db(self.db.store.upsert_statuses, statuses)
        if updates:
            await self.db.outbox(self.db.store.update_batches, updates)
