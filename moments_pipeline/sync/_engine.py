"""The sync engine: plan, send through the outbox, collect reports, record every participant.

Exactly once, without an idempotency key on Infobip's side, rests on the outbox in the shared
ledger: a batch is PLANNED before anything leaves, marked SENDING (durably) right before its
body leaves, and SENT once its operationId is known. A re-run sends only PLANNED batches; a batch
caught in SENDING may have been queued and is treated like an ambiguous send: resolved by a
notifyUrl callback (callbackData = batch id) or HELD, and re-sent only on ``resend_ambiguous``.

Reports come preferably by callback (no request spent from the account's 10 req/s), by polling
only after a grace period, all within the report deadline. The engine never logs; everything it
knows ends in the ``SyncResult`` and the ledger. It imports no warehouse implementation and no
HTTP library: only the two protocols.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

from ._batching import (
    PlannedBatch,
    SyncParticipant,
    UniquenessGuard,
    plan_batches,
)
from ._clock import Clock, MonotonicClock
from ._columns import BatchMembers
from ._errors import SyncAuthError
from ._identity_check import check_against_prior, load_prior_profiles
from ._lease import RunLease, new_run_id
from ._options import SyncOptions
from ._protocols import (
    BatchRecord,
    BatchState,
    FlowDestination,
    LedgerStore,
    OperationReport,
    QuarantineRow,
    SendKind,
    SendOutcome,
    StatusRow,
)
from ._record import count_rows, refused_records, unresolved_rows
from ._reports import statuses_from_reports
from ._result import HeldBatch, SyncResult
from ._run_parts import (
    LIVE_STATES,
    GcFreezer,
    LedgerWorker,
    RunBatch,
    columns_of,
    person_key_of,
    take_rows,
)

SENDING_AT_CRASH = "SENDING_AT_CRASH"
"""Reason of a batch found SENDING by a later run: its request may have left."""

CLAIMED_BY_ANOTHER_RUN = "CLAIMED_BY_ANOTHER_RUN"
"""Reason of a batch whose SENDING mark found it no longer PLANNED: another run has it."""

RUN_STOPPED = "RUN_STOPPED"
"""Reason of a batch left unsent because the run stopped (auth refused, lease lost)."""


class SyncEngine:
    """Puts participants into one flow exactly once, keeping a record of each of them.

    Args:
        destination: where requests go (``MomentsFlowDestination`` in production).
        ledger: the shared durable state (``SqlLedgerStore`` in production).
        options: the run's knobs.
        clock: injectable time source (tests pass a fake one).
        wall_clock: epoch seconds for the run lease's expiry (``time.time``); injectable so
            tests can expire a lease without waiting.
    """

    def __init__(
        self,
        destination: FlowDestination,
        ledger: LedgerStore,
        *,
        options: SyncOptions | None = None,
        clock: Clock | None = None,
        wall_clock: Callable[[], float] | None = None,
    ) -> None:
        self.destination = destination
        self.ledger = ledger
        self.options = options or SyncOptions()
        self.clock = clock or MonotonicClock()
        self.wall_clock = wall_clock or time.time

    async def run(
        self,
        *,
        audience: str,
        partition_key: str,
        campaign_id: int,
        participants: Sequence[SyncParticipant],
        quarantine: Sequence[QuarantineRow] = (),
        run_id: str | None = None,
    ) -> SyncResult:
        """Sync one partition of an audience into one flow.

        The run first takes the ledger's run lease (``SyncOptions.lease_scope``), then, inside
        it, re-checks every participant against the identity ledger as it is now (a person
        whose identifiers touch two earlier profiles, or one profile of another externalId, is
        quarantined, never sent), replaces the partition's quarantine record, and sends.

        Args:
            audience: audience name.
            partition_key: the partition being synced ("" when unpartitioned).
            campaign_id: the flow's campaignId.
            participants: prepared participants, one per person.
            quarantine: rows preparation refused; they replace the partition's quarantine
                record (together with the re-check's), even when there are none.
            run_id: this run's id in the lease (e.g. the orchestrator's run id); by default
                ``<host>/<pid>/<random>``.

        Returns:
            The run's ``SyncResult``.

        Raises:
            LeaseHeldError: another run holds the lease beyond ``lease_wait_s`` (nothing sent).
            LeaseLostError: the lease could not be renewed; sending stopped.
            SyncAuthError: Infobip refused the credentials; sending stopped.
            DuplicateIdentifierError: when two participants share an identifier (nothing sent).
        """
        run = _Run(self, audience, partition_key, campaign_id)
        lease = RunLease(
            self.ledger,
            holder=run_id or new_run_id(),
            description=f"audience={audience!r} partition={partition_key!r} flow={campaign_id}",
            options=self.options,
            clock=self.clock,
            wall_clock=self.wall_clock,
        )
        return await run.execute(participants, quarantine, lease)


class _Run:
    """State of one ``SyncEngine.run`` call."""

    def __init__(self, engine: SyncEngine, audience: str, partition: str, campaign: int) -> None:
        self.destination = engine.destination
        self.opts = engine.options
        self.clock = engine.clock
        self.db = LedgerWorker(engine.ledger)
        self.result = SyncResult(audience=audience, partition_key=partition, campaign_id=campaign)
        self.audience, self.partition, self.campaign = audience, partition, campaign
        self.batches: dict[str, RunBatch] = {}
        self.body_by_key: dict[str, SyncParticipant] = {}
        self.pending_updates: dict[str, BatchRecord] = {}
        self.pending_statuses: list[StatusRow] = []
        self.to_report: list[RunBatch] = []
        self.send_slots = asyncio.Semaphore(self.opts.max_concurrent_sends)
        self.poll_slots = asyncio.Semaphore(self.opts.max_concurrent_polls)
        self.send_tasks: set[asyncio.Task[None]] = set()
        self.last_flush = self.clock.now()
        self.sends_done_at: float | None = None
        self.planner: asyncio.Task[None] | None = None
        self.guard = UniquenessGuard()
        self.gc = GcFreezer(self.opts.freeze_gc)
        self.stopped: Exception | None = None
        self.to_send_total = 0
        self.planned_people = 0

    async def execute(
        self,
        participants: Sequence[SyncParticipant],
        quarantine: Sequence[QuarantineRow],
        lease: RunLease,
    ) -> SyncResult:
        started = self.clock.now()
        renewer: asyncio.Task[None] | None = None
        try:
            await self.db(self.db.store.ensure_schema)
            await lease.acquire()
            renewer = asyncio.create_task(lease.keep_alive(self._stop))
            to_send, taken_ids = await self._resume(participants)
            to_send, refused_rows = await self._recheck_identities(to_send)
            self.to_send_total = len(to_send)
            await self._record_quarantine([*quarantine, *refused_rows])
            self.gc.freeze()
            self.planner = asyncio.create_task(self._plan_and_send(to_send, taken_ids))
            await self._collect()
            await self._finish()
        finally:
            if renewer is not None:
                renewer.cancel()
            if self.planner is not None and not self.planner.done():
                self.planner.cancel()
            for batch in self.batches.values():
                if batch.poll is not None:
                    batch.poll.cancel()
            self.db.close()
            lease.release()
            self.gc.release()
        self.result.duration_s = self.clock.now() - started
        if isinstance(self.stopped, SyncAuthError):  # now the count of the unsent is known
            unplanned = self.to_send_total - self.planned_people
            not_sent = self.result.status_counts.get("NOT_SENT", 0) + unplanned
            raise SyncAuthError(self.stopped.reason, not_sent) from None
        if self.stopped is not None:
            raise self.stopped
        if self.planner is not None and not self.planner.cancelled():
            failure = self.planner.exception()
            if failure is not None:  # e.g. a shared identifier: raised once the record is kept
                raise failure
        return self.result

    def _stop(self, reason: Exception) -> None:
        """Stop sending (auth refused, lease lost): no new request leaves after this."""
        if self.stopped is None:
            self.stopped = reason
        if self.planner is not None and not self.planner.done():
            self.planner.cancel()

    # -- planning ---------------------------------------------------------------------------

    async def _record_quarantine(self, quarantine: Sequence[QuarantineRow]) -> None:
        """Replace the partition's quarantine record, even with nothing (old rows must go)."""
        for row in quarantine:
            self.result.quarantined_by_reason[row.reason] += 1
        await self.db(
            self.db.store.replace_quarantine, self.audience, self.partition, list(quarantine)
        )

    async def _recheck_identities(
        self, to_send: list[SyncParticipant]
    ) -> tuple[list[SyncParticipant], list[QuarantineRow]]:
        """Re-check the participants against the identity ledger as it is now, under the lease.

        Preparation checked an older ledger (other audiences may have sent since); see
        ``_identity_check``. Refused participants become quarantine rows, one per source row.
        """
        if not to_send:
            return to_send, []
        prior = load_prior_profiles(await self.db(self.db.store.sent_identities))
        keep, refused = await asyncio.to_thread(check_against_prior, to_send, prior)
        rows = refused_records(self.result, refused, self.audience, self.partition)
        return keep, rows

    async def _resume(
        self, participants: Sequence[SyncParticipant]
    ) -> tuple[list[SyncParticipant], set[str]]:
        """Take over the partition's earlier batches; return who is left to send, sorted."""
        store = self.db.store
        self.body_by_key = {p.person_key: p for p in participants}
        existing = await self.db(store.batches, self.audience, self.partition, self.campaign)
        stale = [b.batch_id for b in existing if b.state is BatchState.PLANNED]
        if stale:  # never left: forget them and plan again from the current input
            await self.db(store.discard_planned, stale)
        live = [b for b in existing if b.state in LIVE_STATES]
        members = BatchMembers.from_members(
            await self.db(store.batch_members, [b.batch_id for b in live])
        )
        rows_of: dict[str, list[int]] = {b.batch_id: [] for b in live}
        for index, batch_id in enumerate(members.batch_ids):
            rows_of[batch_id].append(index)
        by_batch = {b: take_rows(members, rows) for b, rows in rows_of.items()}
        claimed = set(members.person_keys)
        crashed: list[BatchRecord] = []
        for record in live:
            if record.state is BatchState.SENDING:
                record = dataclasses.replace(record, state=BatchState.HELD, reason=SENDING_AT_CRASH)
                crashed.append(record)
            batch = RunBatch(
                record, by_batch[record.batch_id], self._bodies(by_batch[record.batch_id])
            )
            if record.state is BatchState.HELD:
                batch.held_at = float("-inf")  # held by an earlier run: no grace left
            self.batches[record.batch_id] = batch
        if crashed:
            await self.db(store.update_batches, crashed)
        delivered = await self.db(store.delivered_person_keys, self.campaign)
        to_send = []
        for p in participants:
            if p.person_key in claimed:
                continue
            if p.person_key in delivered:
                self.result.already_delivered += 1
            else:
                to_send.append(p)
        self.result.participants_in = len(participants)
        self.result.delivered = self.result.already_delivered
        to_send.sort(key=person_key_of)
        return to_send, {b.batch_id for b in existing if b.batch_id not in stale}

    async def _plan_and_send(self, to_send: list[SyncParticipant], taken_ids: set[str]) -> None:
        """Check, plan and record chunk after chunk, handing each batch to the senders.

        Pipelined so the first request leaves after one chunk, not after the whole audience;
        the CPU work runs on a worker thread so the event loop keeps the pipe full meanwhile.
        Chunks are cut at multiples of the batch size of the sorted input, so the batches (and
        their ids) are the same as if the whole audience had been planned at once.
        """
        step = self.opts.batch_size * self.opts.plan_chunk_batches
        for start in range(0, len(to_send), step):
            chunk = to_send[start : start + step]
            planned = await asyncio.to_thread(self._plan_chunk, chunk, taken_ids)
            records = [
                BatchRecord(
                    batch_id=p.batch_id,
                    audience=self.audience,
                    partition_key=self.partition,
                    campaign_id=self.campaign,
                    attempt=p.attempt,
                    size=len(p.participants),
                    state=BatchState.PLANNED,
                )
                for p in planned
            ]
            members = BatchMembers.concat(columns_of(p) for p in planned)
            await self.db(self.db.store.plan_batches, records, members)
            self.planned_people += sum(r.size for r in records)
            for record, plan in zip(records, planned, strict=True):
                batch = RunBatch(record, columns_of(plan), plan.participants)
                self.batches[record.batch_id] = batch
                self._spawn_send(batch)
            self.gc.freeze()

    def _plan_chunk(self, chunk: list[SyncParticipant], taken_ids: set[str]) -> list[PlannedBatch]:
        self.guard.check(chunk)
        return plan_batches(
            chunk,
            audience=self.audience,
            partition_key=self.partition,
            campaign_id=self.campaign,
            batch_size=self.opts.batch_size,
            taken_ids=taken_ids,
        )

    def _bodies(self, members: BatchMembers) -> tuple[SyncParticipant, ...] | None:
        """Rebuild a batch's bodies from the current input (None if someone is missing)."""
        keys = sorted(set(members.person_keys))
        bodies = [self.body_by_key.get(k) for k in keys]
        if any(b is None for b in bodies):
            return None
        return tuple(b for b in bodies if b is not None)

    # -- sending ----------------------------------------------------------------------------

    def _spawn_send(self, batch: RunBatch, *, resend: bool = False) -> None:
        task = asyncio.create_task(self._send(batch, resend=resend))
        self.send_tasks.add(task)
        task.add_done_callback(self.send_tasks.discard)

    async def _send(self, batch: RunBatch, *, resend: bool) -> None:
        assert batch.participants is not None
        bodies = [p.body for p in batch.participants]
        # A first send claims a PLANNED batch; a re-send a HELD one (or one still SENDING in
        # the ledger because its HELD mark is not flushed yet).
        expected = (BatchState.HELD, BatchState.SENDING) if resend else (BatchState.PLANNED,)
        before = BatchState.HELD if resend else BatchState.PLANNED
        async with self.send_slots:
            if self.stopped is not None:
                self._left_unsent(batch, before, f"{RUN_STOPPED}:{type(self.stopped).__name__}")
                return
            # The SENDING mark must be durable before the body leaves: after a crash it is what
            # tells a later run that this request may have been queued. It is also a claim: if
            # the batch is no longer in an expected state, another run has it.
            if not await self.db.mark_sending(batch.record.batch_id, expected):
                self._skip(batch)
                return
            batch.record = dataclasses.replace(batch.record, state=BatchState.SENDING)
            for attempt in range(self.opts.not_sent_retries + 1):
                outcome = await self._send_once(bodies, batch.record.batch_id)
                if outcome.kind is not SendKind.NOT_SENT or self.stopped is not None:
                    break
                if attempt < self.opts.not_sent_retries:
                    await self.clock.sleep(0.5 * 2**attempt)
        now = self.clock.now()
        record = batch.record
        if outcome.kind in (SendKind.NOT_SENT, SendKind.AUTH_FAILED):
            # Known not processed. A first send goes back to PLANNED (a later run plans it
            # again); a re-send back to HELD, since its first, ambiguous send may have landed.
            self._left_unsent(batch, before, outcome.reason)
            if outcome.kind is SendKind.AUTH_FAILED:
                self._stop(SyncAuthError(outcome.reason or "AUTH_FAILED", 0))
            return
        self.result.batches_sent += 1
        if outcome.kind is SendKind.SENT:
            record = dataclasses.replace(
                record, state=BatchState.SENT, operation_id=outcome.operation_id, reason=None
            )
            batch.sent_at = now
        elif outcome.kind is SendKind.AMBIGUOUS:
            record = dataclasses.replace(record, state=BatchState.HELD, reason=outcome.reason)
            batch.held_at = now
        else:  # REFUSED: nothing was queued, and sending it again would be refused again
            record = dataclasses.replace(record, state=BatchState.FAILED, reason=outcome.reason)
            batch.resolved_by = "refused"
        if resend:
            record = dataclasses.replace(record, resent=True)
        batch.record = record
        self.pending_updates[record.batch_id] = record

    def _left_unsent(self, batch: RunBatch, state: BatchState, reason: str | None) -> None:
        if state is BatchState.HELD:
            batch.held_at = float("-inf")  # not re-sent again by this run
            reason = batch.record.reason  # keep why it was held in the first place
        batch.record = dataclasses.replace(batch.record, state=state, reason=reason)
        self.pending_updates[batch.record.batch_id] = batch.record
        if state is BatchState.HELD:
            batch.participants = None  # never re-sent again by this run

    def _skip(self, batch: RunBatch) -> None:
        """Drop a batch another run claimed: its record and its people are that run's."""
        batch.resolved_by = "skipped"
        self.pending_updates.pop(batch.record.batch_id, None)
        record = batch.record
        self.result.skipped_batches.append(
            HeldBatch(record.batch_id, record.size, record.state.value, CLAIMED_BY_ANOTHER_RUN)
        )

    async def _send_once(self, bodies: list[Any], batch_id: str) -> SendOutcome:
        try:
            return await self.destination.send(self.campaign, bodies, callback_data=batch_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the body may have left: assume nothing
            return SendOutcome(SendKind.AMBIGUOUS, reason=f"UNEXPECTED:{type(exc).__name__}")

    # -- reports ----------------------------------------------------------------------------

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
        outstanding = {b.record.batch_id: b for b in self._outstanding()}
        if not outstanding:
            return
        received = await self.db(self.db.store.callbacks, list(outstanding))
        for batch_id, reports in received.items():
            batch = outstanding[batch_id]
            batch.reports = reports
            if batch.record.state is BatchState.HELD:
                # A callback proves the operation was queued and names it.
                batch.record = dataclasses.replace(
                    batch.record, state=BatchState.SENT, operation_id=reports[0].operation_id
                )
                batch.sent_at = self.clock.now()
                self.pending_updates[batch_id] = batch.record
            if all(r.is_final for r in reports):
                self._resolve(batch, "callback")

    def _handle_ambiguous(self, now: float) -> None:
        if not self.opts.resend_ambiguous or self.stopped is not None:
            return
        for batch in self._outstanding():
            if batch.record.state is not BatchState.HELD or batch.participants is None:
                continue
            if self._may_still_resolve(batch, now):
                continue
            try:
                self.guard.check(batch.participants)
            except ValueError as exc:  # an identifier now belongs to someone else: keep it held
                batch.participants = None
                reason = f"RESEND_REFUSED:{type(exc).__name__}"
                batch.record = dataclasses.replace(batch.record, reason=reason)
                self.pending_updates[batch.record.batch_id] = batch.record
                continue
            batch.held_at = None
            batch.record = dataclasses.replace(batch.record, state=BatchState.SENDING)
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
            except Exception:  # noqa: BLE001 - a failed poll is retried until the deadline
                report = None
        if batch.resolved_by is None and report is not None:
            batch.reports = [*[r for r in batch.reports if r.operation_id != operation_id], report]
            if report.is_final:
                self._resolve(batch, "polling")
        batch.poll = None
        return report

    def _resolve(self, batch: RunBatch, how: str) -> None:
        batch.resolved_by = how
        if batch.poll is not None and how == "callback":
            batch.poll.cancel()
            batch.poll = None
        batch.record = dataclasses.replace(batch.record, state=BatchState.REPORTED)
        self.pending_updates[batch.record.batch_id] = batch.record
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
        if resolved:
            statuses += await asyncio.to_thread(self._report_rows, resolved)
        # Statuses before the REPORTED marks: a crash in between leaves the batch SENT, and a
        # later run fetches its report again, instead of a REPORTED batch without statuses.
        if statuses:
            await self.db(self.db.store.upsert_statuses, statuses)
        if updates:
            await self.db(self.db.store.update_batches, updates)

    # -- the record -------------------------------------------------------------------------

    async def _finish(self) -> None:
        for task in list(self.send_tasks):
            task.cancel()
        for batch in self.batches.values():
            if batch.poll is not None:
                batch.poll.cancel()
                batch.poll = None
        await self._flush()
        final_rows: list[StatusRow] = []
        result = self.result
        result.batches_planned = len(self.batches)
        for batch in self.batches.values():
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
                rows = unresolved_rows(batch)
                count_rows(self.result, rows, self.batches, self.opts.rejected_samples)
                final_rows.extend(rows)
            if record.state in (BatchState.HELD, BatchState.PLANNED):
                result.held_batches.append(
                    HeldBatch(record.batch_id, record.size, record.state.value, record.reason or "")
                )
        if final_rows:
            await self.db(self.db.store.upsert_statuses, final_rows)
