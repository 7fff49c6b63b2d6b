"""The forms engine: submissions and view increments, each exactly once, through the outbox.

Submit-form-data and increment-view-count are non-idempotent POSTs without an idempotency key.
Each row gets a deterministic key (``form_send_key``: kind, form, source, partition, row id) and
is one outbox record of the ledger, in the scope ``form:<form id>`` (views:
``form-views:<form id>``; partition ``""``, campaign 0), under the batch state machine of
``_states`` (no second table): PLANNED -> CLAIMED (compare-and-set) -> SENDING (written by the
client's gate after the rate slot, right before the request) -> SENT (``{"status": "OK"}``,
final for forms: no report follows) / FAILED (a 400: nothing processed) / HELD (ambiguous:
reported, never re-sent here); SENDING -> CLAIMED when the answer proves it was not processed
(429, 403, other 4xx, refused connection). A record found CLAIMED by a dead run is planned
again; one found SENDING becomes HELD (``SENDING_AT_CRASH``).

A submission's identifiers (its email, phone and externalId fields) are the record's members,
so they join the account's identity ledger (``LedgerStore.sent_identities``) like flow batches:
under the run lease every submission is re-checked against it (``check_against_prior``), and a
later audience or form source cannot merge two people through them either. With
``resubmitEnabled: false`` a person (profile anchor) with a submission that may have left is
not submitted again (``ALREADY_SUBMITTED``), nor twice within a run.

A 403/404 (form not ACTIVE or missing) or 401 stops the run at the first such answer
(``FormUnavailableError`` / ``AccountRefusedError``); what was not sent stays PLANNED. Pacing is
the client's account-wide rate budget. Returns a ``FormSyncResult``; never logs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._batching import SyncParticipant, identifiers_of
from ._clock import MonotonicClock
from ._errors import AccountRefusedError, DestinationStoppedError, LeaseLostError
from ._forms_destination import FormsDestination
from ._identity_check import check_against_prior, load_prior_profiles
from ._lease import RunLease, new_run_id
from ._options import SyncOptions
from ._protocols import BatchMember, BatchRecord, LedgerStore, SendKind, SendOutcome
from ._resume import SENDING_AT_CRASH
from ._states import MAY_HAVE_LEFT, BatchState

_B = BatchState
FORM_CAMPAIGN = 0
"""Campaign id of every forms record (forms have no flow); the scope is in ``audience``."""
ALREADY_SUBMITTED = "ALREADY_SUBMITTED"
"""Skipped: resubmitEnabled is false and this person's submission may already have left."""

PROBE_CLAIMED = "claimed"
PROBE_SLOT = "slot"
PROBE_ON_WIRE = "on_wire"
PROBE_NOT_PROCESSED = "not_processed"
PROBE_ANSWERED = "answered"
PROBE_RECORDED = "recorded"
Probe = Callable[[str, str], None]


class FormUnavailableError(DestinationStoppedError):
    """403/404 on a forms write: the form is not ACTIVE (or gone); the run stopped."""

    def __init__(self, form_id: str, reason: str, not_sent: int = 0) -> None:
        self.form_id = form_id
        super().__init__(FORM_CAMPAIGN, reason, not_sent)

    def _describe(self) -> str:
        return (
            f"form {self.form_id} is not ACTIVE or does not exist on Infobip ({self.reason}): "
            "the refused request was not processed, and "
            + self._tail()
            + " Activate the form (or fix form.id), then run again."
        )

    def _tail(self) -> str:
        return (
            f"the run stopped with {self.not_sent} row(s) not sent; they stay PLANNED and a "
            "later run sends them."
        )

    def with_not_sent(self, not_sent: int) -> FormUnavailableError:
        return FormUnavailableError(self.form_id, self.reason, not_sent)


class FormAccountRefusedError(AccountRefusedError):
    """401 on a forms call: the API key is refused; the run stopped (an ``AccountRefusedError``)."""

    def __init__(self, form_id: str, reason: str, not_sent: int = 0) -> None:
        self.form_id = form_id
        super().__init__(FORM_CAMPAIGN, reason, not_sent)

    def _describe(self) -> str:
        return (
            f"Infobip refused the API key ({self.reason}) for form {self.form_id}: the refused "
            f"request was not processed, and the run stopped with {self.not_sent} row(s) not "
            "sent; they stay PLANNED. Check INFOBIP_API_KEY and its scopes, then run again."
        )

    def with_not_sent(self, not_sent: int) -> FormAccountRefusedError:
        return FormAccountRefusedError(self.form_id, self.reason, not_sent)


def form_scope(form_id: str, *, views: bool = False) -> str:
    """The outbox ``audience`` of a form's submissions (or of its views)."""
    return f"{'form-views' if views else 'form'}:{form_id}"


def form_send_key(kind: str, form_id: str, source: str, partition_key: str, row_id: str) -> str:
    """The deterministic submission (or view) key of one source row."""
    text = "\x1f".join((kind, form_id, source, partition_key, row_id))
    return "fs_" + hashlib.sha256(text.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class FormSend:
    """One row to submit (``data``) or one view event (``data`` empty).

    ``identifiers``: (kind, identifier) the submission carries; ``person_key`` and
    ``profile_anchor`` as the identity layer gave them (views: the row id, no identifiers).
    """

    row_id: str
    data: Mapping[str, Any] = field(default_factory=dict)
    person_key: str = ""
    profile_anchor: str = ""
    identifiers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class FormRowOutcome:
    """What became of one row, with a reason when not SUBMITTED.

    ``state``: SUBMITTED, REJECTED, HELD, NOT_SENT, SKIPPED or REFUSED_AT_SYNC.
    """

    row_id: str
    send_key: str
    state: str
    reason: str | None = None


@dataclass
class FormSyncResult:
    """Outcome of one forms run: one ``FormRowOutcome`` per row handed in, and timings."""

    source: str
    form_id: str
    rows: list[FormRowOutcome]
    requests: int = 0
    duration_s: float = 0.0
    sent_this_run: int = 0
    held_at_start: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Rows by state."""
        return dict(Counter(row.state for row in self.rows))

    @property
    def by_reason(self) -> dict[str, int]:
        """``<STATE>:<reason>`` counts of rows with a reason."""
        return dict(Counter(f"{r.state}:{r.reason}" for r in self.rows if r.reason))


def _body(send: FormSend) -> dict[str, Any]:
    """The submission's identifiers in the FlowParticipant shape ``identifiers_of`` reads."""
    emails = [v for k, v in send.identifiers if k == "EMAIL"]
    phones = [v for k, v in send.identifiers if k == "PHONE"]
    external = [v for k, v in send.identifiers if k == "EXTERNAL_ID"]
    person: dict[str, Any] = {}
    if external:
        person["externalId"] = external[0]
    contact: dict[str, Any] = {}
    if emails:
        contact["email"] = [{"address": e} for e in emails]
    if phones:
        contact["phone"] = [{"number": p} for p in phones]
    if contact:
        person["contactInformation"] = contact
    body: dict[str, Any] = {"person": person}
    if emails or phones:
        body["identifyBy"] = {
            "identifier": (emails or phones)[0],
            "type": "EMAIL" if emails else "PHONE",
        }
    return body


class _Gate:
    """The client's ``SendGate`` for one record: the SENDING mark and its undo."""

    def __init__(self, engine: FormsEngine, key: str) -> None:
        self.engine, self.key, self.marked = engine, key, False

    async def before_issue(self) -> None:
        engine = self.engine
        engine.probe(PROBE_SLOT, self.key)
        if not await engine.lease.claimable():
            raise LeaseLostError(engine.lease.scope, engine.run_id)
        ok = await asyncio.to_thread(
            engine.ledger.mark_sending, self.key, (_B.CLAIMED,), claimed_by=engine.run_id
        )
        if not ok:
            raise RuntimeError(f"record {self.key} is no longer claimed by this run")
        self.marked = True
        engine.probe(PROBE_ON_WIRE, self.key)

    async def not_processed(self) -> None:
        if self.marked:
            await asyncio.to_thread(self.engine.ledger.unmark_sending, self.key, self.engine.run_id)
            self.marked = False
        self.engine.probe(PROBE_NOT_PROCESSED, self.key)


class FormsEngine:
    """Runs one form source (submissions or views) against a ``FormsDestination``.

    Args:
        destination: the Forms API (``MomentsFormsDestination``).
        ledger: the shared ledger (outbox, identity ledger, lease).
        options: lease settings (``SyncOptions``); ``max_concurrent_sends`` requests at once.
        probe: test seam called at each point of the send path (``PROBE_*``).
    """

    def __init__(
        self,
        destination: FormsDestination,
        ledger: LedgerStore,
        *,
        options: SyncOptions | None = None,
        probe: Probe | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.destination = destination
        self.ledger = ledger
        self.options = options or SyncOptions()
        self.probe: Probe = probe or (lambda _at, _key: None)
        self.clock = MonotonicClock()
        self.wall_clock = wall_clock
        self.run_id = new_run_id()
        self.lease: RunLease

    async def run(
        self,
        *,
        source: str,
        form_id: str,
        sends: Sequence[FormSend],
        views: bool = False,
        partition_key: str = "",
        resubmit_enabled: bool = True,
        submission_source: str | None = None,
        campaign: str | None = None,
    ) -> FormSyncResult:
        """Submit (or count) every row of ``sends`` at most once; see the module docstring.

        Raises:
            FormUnavailableError, AccountRefusedError: the first such answer (the rest PLANNED).
            LeaseHeldError, LeaseLostError: as for the flow engine.
        """
        started = self.clock.now()
        scope = form_scope(form_id, views=views)
        kind = "view" if views else "submit"
        self.lease = RunLease(
            self.ledger,
            holder=self.run_id,
            description=f"form source {source} -> {scope}",
            options=self.options,
            clock=self.clock,
            wall_clock=self.wall_clock,
        )
        await self.lease.acquire()
        # A lost lease is seen by ``claimable()`` before each SENDING mark: sending stops.
        self.lease.start_heartbeat(lambda _exc: None)
        try:
            return await self._run_leased(
                source,
                form_id,
                scope,
                kind,
                sends,
                partition_key,
                resubmit_enabled,
                submission_source,
                campaign,
                started,
            )
        finally:
            await asyncio.to_thread(self.lease.release)

    async def _run_leased(
        self,
        source: str,
        form_id: str,
        scope: str,
        kind: str,
        sends: Sequence[FormSend],
        partition_key: str,
        resubmit_enabled: bool,
        submission_source: str | None,
        campaign: str | None,
        started: float,
    ) -> FormSyncResult:
        ledger = self.ledger
        records = {r.batch_id: r for r in ledger.batches(scope, "", FORM_CAMPAIGN)}
        # Under the lease every other claim or mark in the scope is a dead run's.
        dead_claims = [
            r for r in records.values() if r.state is _B.CLAIMED and r.claimed_by != self.run_id
        ]
        if dead_claims:
            ledger.update_batches([_with(r, _B.PLANNED, claimed_by=None) for r in dead_claims])
        dead_marks = [r.batch_id for r in records.values() if r.state is _B.SENDING]
        held_now = ledger.hold_unanswered(dead_marks, SENDING_AT_CRASH) if dead_marks else []
        records = {r.batch_id: r for r in ledger.batches(scope, "", FORM_CAMPAIGN)}

        keyed = [(form_send_key(kind, form_id, source, partition_key, s.row_id), s) for s in sends]
        outcomes: dict[str, FormRowOutcome] = {}
        fresh = [(key, s) for key, s in keyed if key not in records]
        if kind == "submit":
            # The identity re-check, under the lease, of everything about to be sent: new rows
            # and rows a stopped run left PLANNED (others may have sent since).
            waiting = [(k, s) for k, s in keyed if k in records and records[k].state is _B.PLANNED]
            kept = {k for k, _ in self._identity_recheck(waiting, outcomes)} if waiting else set()
            refused = [k for k, _ in waiting if k not in kept]
            if refused:
                ledger.discard_planned(refused)
            if fresh:
                fresh = self._identity_recheck(fresh, outcomes)
        if not resubmit_enabled and kind == "submit":
            fresh = self._one_per_person(records, keyed, fresh, outcomes)
        self._plan(scope, fresh)
        records = {r.batch_id: r for r in ledger.batches(scope, "", FORM_CAMPAIGN)}

        todo = [
            (key, s) for key, s in keyed if key not in outcomes and records[key].state is _B.PLANNED
        ]
        result = FormSyncResult(source=source, form_id=form_id, rows=[], held_at_start=held_now)
        stop: list[DestinationStoppedError] = []
        semaphore = asyncio.Semaphore(self.options.max_concurrent_sends)

        async def one(key: str, send: FormSend) -> None:
            async with semaphore:
                if stop:
                    return
                await self._send_one(
                    key, send, form_id, kind, submission_source, campaign, stop, result
                )

        await asyncio.gather(*(one(key, send) for key, send in todo))
        final = {r.batch_id: r for r in ledger.batches(scope, "", FORM_CAMPAIGN)}
        for key, send in keyed:
            if key in outcomes:
                result.rows.append(outcomes[key])
                continue
            record = final[key]
            result.rows.append(FormRowOutcome(send.row_id, key, *_row_state(record)))
        result.duration_s = self.clock.now() - started
        if stop:
            not_sent = sum(1 for row in result.rows if row.state == "NOT_SENT")
            raise stop[0].with_not_sent(not_sent)
        return result

    def _identity_recheck(
        self, fresh: list[tuple[str, FormSend]], outcomes: dict[str, FormRowOutcome]
    ) -> list[tuple[str, FormSend]]:
        profiles = load_prior_profiles(self.ledger.sent_identities())
        wrapped = [
            SyncParticipant(s.person_key, _body(s), s.profile_anchor or None, (s.row_id,))
            for _, s in fresh
        ]
        keep, refused = check_against_prior(wrapped, profiles)
        by_row = {key: s for key, s in fresh}
        keys = {s.row_id: key for key, s in fresh}
        for item in refused:
            row_id = item.participant.source_rows[0]
            outcomes[keys[row_id]] = FormRowOutcome(
                row_id, keys[row_id], "REFUSED_AT_SYNC", f"{item.reason}: {item.detail}"
            )
        out = []
        for participant in keep:
            key = keys[participant.source_rows[0]]
            send = by_row[key]
            anchor = participant.profile_anchor or send.profile_anchor
            out.append(
                (key, FormSend(send.row_id, send.data, send.person_key, anchor, send.identifiers))
            )
        return out

    def _one_per_person(
        self,
        records: Mapping[str, BatchRecord],
        keyed: Sequence[tuple[str, FormSend]],
        fresh: list[tuple[str, FormSend]],
        outcomes: dict[str, FormRowOutcome],
    ) -> list[tuple[str, FormSend]]:
        left = [k for k, r in records.items() if r.state in MAY_HAVE_LEFT or r.state is _B.PLANNED]
        taken = {m.profile_anchor or m.person_key for m in self.ledger.batch_members(left)}
        out = []
        for key, send in fresh:
            person = send.profile_anchor or send.person_key
            if person in taken:
                outcomes[key] = FormRowOutcome(send.row_id, key, "SKIPPED", ALREADY_SUBMITTED)
                continue
            taken.add(person)
            out.append((key, send))
        return out

    def _plan(self, scope: str, fresh: Iterable[tuple[str, FormSend]]) -> None:
        batches, members = [], []
        for key, send in fresh:
            batches.append(BatchRecord(key, scope, "", FORM_CAMPAIGN, 1, 1, _B.PLANNED))
            anchor = send.profile_anchor or send.person_key or None
            for ident_kind, identifier, is_id in identifiers_of(_body(send)):
                members.append(
                    BatchMember(key, send.person_key, ident_kind, identifier, is_id, anchor)
                )
        if batches:
            self.ledger.plan_batches(batches, members)

    async def _send_one(
        self,
        key: str,
        send: FormSend,
        form_id: str,
        kind: str,
        submission_source: str | None,
        campaign: str | None,
        stop: list[DestinationStoppedError],
        result: FormSyncResult,
    ) -> None:
        ledger = self.ledger
        if not await asyncio.to_thread(ledger.claim_batch, key, self.run_id):
            return
        self.probe(PROBE_CLAIMED, key)
        gate = _Gate(self, key)
        result.requests += 1
        try:
            if kind == "view":
                outcome = await self.destination.view(form_id, gate=gate)
            else:
                outcome = await self.destination.submit(
                    form_id, send.data, source=submission_source, campaign=campaign, gate=gate
                )
        except LeaseLostError:
            outcome = SendOutcome(SendKind.NOT_SENT, reason="LEASE_LOST")
        self.probe(PROBE_ANSWERED, key)
        record = BatchRecord(key, "", "", FORM_CAMPAIGN, 1, 1, _B.CLAIMED, claimed_by=self.run_id)
        if gate.marked:  # the request may have reached Infobip
            record = _with(record, _B.SENDING)
            if outcome.kind is SendKind.SENT:
                new = _with(record, _B.SENT, reason=None)
                result.sent_this_run += 1
            else:
                new = _with(record, _B.HELD, reason=outcome.reason or "AMBIGUOUS")
        elif outcome.kind is SendKind.REFUSED:
            new = _with(record, _B.FAILED, reason=outcome.reason)
        else:  # certainly not processed: back to PLANNED for a later run
            new = _with(record, _B.PLANNED, claimed_by=None)
            if outcome.kind is SendKind.FORM_UNAVAILABLE:
                stop.append(FormUnavailableError(form_id, outcome.reason or "FORBIDDEN"))
            elif outcome.kind is SendKind.AUTH_FAILED:
                stop.append(FormAccountRefusedError(form_id, outcome.reason or "AUTH_FAILED"))
        await asyncio.to_thread(ledger.update_batches, [new])
        self.probe(PROBE_RECORDED, key)


def _with(record: BatchRecord, state: BatchState, **changes: Any) -> BatchRecord:
    return dataclasses.replace(record, state=state, **changes)


def _row_state(record: BatchRecord) -> tuple[str, str | None]:
    state = record.state
    if state in (_B.SENT, _B.REPORTED):
        return "SUBMITTED", None
    if state is _B.FAILED:
        return "REJECTED", record.reason
    if state in (_B.HELD, _B.SENDING):
        return "HELD", record.reason
    return "NOT_SENT", record.reason
