"""The sync engine: plan, send through the outbox, collect reports, record every participant.

Exactly once, without an idempotency key on Infobip's side, rests on the outbox in the shared
ledger: a batch is PLANNED before anything leaves, CLAIMED by one run, marked SENDING (durably)
only once its rate slot is held and right before its request is issued, and SENT once its
operationId is known (the states and their one transition table: ``_states``; the send path
and the invariant bounding what a crash leaves ambiguous: ``_send``). A re-run plans PLANNED
and dead runs' CLAIMED batches again; a batch caught in SENDING may have been queued and is
HELD: resolved by a notifyUrl callback (callbackData = batch id) or a report, and re-sent only
on ``resend_ambiguous``.

Reports come preferably by callback (no request spent from the account's 10 req/s), by polling
only after a grace period, all within the report deadline (that half of a run: ``_collect``).
The engine never logs; everything it knows ends in the ``SyncResult`` and the ledger. It
imports no warehouse implementation and no HTTP library: only the two protocols.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from ._batching import (
    PlannedBatch,
    SyncParticipant,
    UniquenessGuard,
    plan_batches,
)
from ._callbacks import ReportScreen
from ._clock import Clock, MonotonicClock
from ._collect import ReportCollection
from ._columns import BatchMembers
from ._errors import (
    DestinationStoppedError,
    LeaseLostError,
    stop_for_outcome,
)
from ._identity_check import check_against_prior, load_prior_profiles
from ._lease import RunLease, new_run_id
from ._options import SyncOptions
from ._progress import ProgressCallback, ProgressCounter
from ._protocols import (
    BatchRecord,
    BatchState,
    FlowDestination,
    LedgerStore,
    QuarantineRow,
    SendKind,
    StatusRow,
)
from ._record import refused_records
from ._result import SyncResult
from ._resume import finish_run, resume_partition
from ._run_parts import (
    GcFreezer,
    LedgerWorker,
    RunBatch,
    columns_of,
)
from ._send import CLAIMED_BY_ANOTHER_RUN, Probe, Sender

RUN_STOPPED = "RUN_STOPPED"
"""Reason of a batch left unsent because the run stopped (key refused, flow missing, credits
exhausted, lease lost)."""


class SyncEngine:
    """Puts participants into one flow exactly once, keeping a record of each of them.

    Args:
        destination: where requests go (``MomentsFlowDestination`` in production).
        ledger: the shared durable state (``SqlLedgerStore`` in production).
        options: the run's knobs.
        clock: injectable time source (tests pass a fake one).
        wall_clock: epoch seconds for the run lease's expiry (``time.time``); injectable so
            tests can expire a lease without waiting.
        probe: called as ``probe(point, batch_id)`` at the send path's ``_send.PROBE_*``
            points (a crash test's runner kills its process there); None in production.
        progress: called with a ``SyncProgress`` when sending starts and after each batch
            (``_progress``); the caller decides what to show. None: nothing is reported.
    """

    def __init__(
        self,
        destination: FlowDestination,
        ledger: LedgerStore,
        *,
        options: SyncOptions | None = None,
        clock: Clock | None = None,
        wall_clock: Callable[[], float] | None = None,
        probe: Probe | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.destination = destination
        self.ledger = ledger
        self.options = options or SyncOptions()
        self.clock = clock or MonotonicClock()
        self.wall_clock = wall_clock or time.time
        self.probe = probe
        self.progress = progress

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
            LeaseLostError: the lease could not be renewed in time; sending stopped.
            DestinationStoppedError: Infobip answered that nothing can succeed (flow missing or
                inactive, key refused, credits exhausted: see ``_errors``); sending stopped at
                the first such answer, the batches not sent stay PLANNED.
            DuplicateIdentifierError: when two participants share an identifier (nothing sent).
        """
        holder = run_id or new_run_id()
        run = _Run(self, audience, partition_key, campaign_id, holder)
        lease = RunLease(
            self.ledger,
            holder=holder,
            description=f"audience={audience!r} partition={partition_key!r} flow={campaign_id}",
            options=self.options,
            clock=self.clock,
            wall_clock=self.wall_clock,
        )
        return await run.execute(participants, quarantine, lease)


class _Run(ReportCollection):
    """State of one ``SyncEngine.run`` call."""

    def __init__(
        self, engine: SyncEngine, audience: str, partition: str, campaign: int, run_id: str
    ) -> None:
        self.destination = engine.destination
        self.opts = engine.options
        self.clock = engine.clock
        self.db = LedgerWorker(engine.ledger)
        self.result = SyncResult(audience=audience, partition_key=partition, campaign_id=campaign)
        self.sender = Sender(
            destination=self.destination,
            db=self.db,
            run_id=run_id,
            campaign=campaign,
            options=self.opts,
            clock=self.clock,
            result=self.result,
            probe=engine.probe,
        )
        self.screen = ReportScreen(self.result, campaign)  # which received reports may apply
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
        self.lease: RunLease | None = None
        self.resumed: set[str] = set()  # batches an earlier run sent: their verdicts are old
        self.to_send_total = 0
        self.planned_people = 0
        self.progress = ProgressCounter(engine.progress, self.clock.now)

    async def execute(
        self,
        participants: Sequence[SyncParticipant],
        quarantine: Sequence[QuarantineRow],
        lease: RunLease,
    ) -> SyncResult:
        started = self.clock.now()
        try:
            await self.db(self.db.store.ensure_schema)
            await lease.acquire()
            self.lease = lease
            lease.start_heartbeat(self._stop)
            to_send, taken_ids = await self._resume(participants)
            to_send, refused_rows = await self._recheck_identities(to_send)
            self.to_send_total = len(to_send)
            await self._record_quarantine([*quarantine, *refused_rows])
            if not to_send:  # no add request will tell whether the key still works: ask
                await self._check_access()
            self.gc.freeze()
            self.progress.start(len(to_send))
            self.planner = asyncio.create_task(self._plan_and_send(to_send, taken_ids))
            await self._collect()
            await self._finish()
        finally:
            lease.stop_heartbeat()
            if self.planner is not None and not self.planner.done():
                self.planner.cancel()
            for batch in self.batches.values():
                if batch.poll is not None:
                    batch.poll.cancel()
            self.db.close()
            lease.release()
            self.gc.release()
        self.result.duration_s = self.clock.now() - started
        if isinstance(self.stopped, DestinationStoppedError):  # the unsent are counted now
            unplanned = self.to_send_total - self.planned_people
            not_sent = self.result.status_counts.get("NOT_SENT", 0) + unplanned
            raise self.stopped.with_not_sent(not_sent) from None
        if self.stopped is not None:
            raise self.stopped
        if self.planner is not None and not self.planner.cancelled():
            failure = self.planner.exception()
            if failure is not None:  # e.g. a shared identifier: raised once the record is kept
                raise failure
        return self.result

    def _stop(self, reason: Exception) -> None:
        """Stop sending (see ``RUN_STOPPED``): no new request leaves after this."""
        if self.stopped is None:
            self.stopped = reason
        if self.planner is not None and not self.planner.done():
            self.planner.cancel()

    async def _check_access(self) -> None:
        """Stop when the destination's cheap read says no send could succeed (see ``_send``)."""
        outcome = await self.destination.check_access(self.campaign)
        stop = stop_for_outcome(outcome, self.campaign) if outcome is not None else None
        if stop is not None:
            self._stop(stop)

    async def _may_claim(self) -> bool:
        """The lease is valid for a while yet; else the run stops (never sends without it)."""
        if self.lease is None or await self.lease.claimable():
            return True
        self._stop(LeaseLostError(self.lease.scope, self.lease.holder))
        return False

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
        return await resume_partition(self, participants)

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
            await self.db.quiet()
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
                batch = RunBatch(record, columns_of(plan), plan.participants, planned_here=True)
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

    # -- sending ----------------------------------------------------------------------------

    def _spawn_send(self, batch: RunBatch, *, resend: bool = False) -> None:
        task = asyncio.create_task(self._send(batch, resend=resend))
        self.send_tasks.add(task)
        task.add_done_callback(self.send_tasks.discard)

    async def _send(self, batch: RunBatch, *, resend: bool) -> None:
        """Claim, send (the gate marks it on the wire) and record one batch; see ``_send``."""
        sender = self.sender
        async with self.send_slots:
            if self.stopped is None:
                await self._may_claim()
            if self.stopped is not None:
                reason = f"{RUN_STOPPED}:{type(self.stopped).__name__}"
                sender.left_unsent(batch, resend=resend, reason=reason)
                self.progress.batch_done(batch.record.size, sent=False)
                return
            if not await sender.claim(batch, resend=resend):
                self.progress.batch_done(batch.record.size, sent=False)
                return
            for attempt in range(self.opts.not_sent_retries + 1):
                outcome = await sender.send_once(batch, resend=resend)
                if outcome.reason == CLAIMED_BY_ANOTHER_RUN:
                    sender.skip(batch)
                    self.progress.batch_done(batch.record.size, sent=False)
                    return
                if outcome.kind is not SendKind.NOT_SENT or self.stopped is not None:
                    break
                if attempt < self.opts.not_sent_retries:
                    await self.clock.sleep(0.5 * 2**attempt)
        stop = stop_for_outcome(outcome, self.campaign)
        if outcome.kind is SendKind.NOT_SENT or stop is not None:
            # Known not processed. A first send goes back to PLANNED (a later run plans it
            # again); a re-send back to HELD, since its first, ambiguous send may have landed.
            # A 401/403/404 also says no other request can succeed: the run stops.
            sender.left_unsent(batch, resend=resend, reason=outcome.reason)
            self.progress.batch_done(batch.record.size, sent=False)
            if stop is not None:
                self._stop(stop)
            return
        sender.record_answer(batch, outcome, resend=resend)
        self.progress.batch_done(batch.record.size, sent=True)

    # -- the record -------------------------------------------------------------------------

    async def _finish(self) -> None:
        """Cancel what is left, flush, and write the record of every unresolved batch."""
        await finish_run(self)
