"""The sync engine's boundaries, as typing Protocols, and the plain values that cross them.

The engine talks to the outside world only through these two seams, in the style of drt
(source, destination, state store):

- ``FlowDestination``: where batches go (an adapter over the Moments client in production).
- ``LedgerStore``: the durable outbox, identity ledger, participant statuses and received
  callbacks (a SQL store over the ``Warehouse`` protocol in production; an in-memory one in
  tests of the engine itself).

Nothing here imports a warehouse implementation, httpx or the client.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ._membership import PlanPerson, PlanSummary, RemovalRecord
from ._states import BatchState, RemovalState


class SendKind(enum.StrEnum):
    """What a destination can say about one send."""

    SENT = "SENT"
    AMBIGUOUS = "AMBIGUOUS"
    NOT_SENT = "NOT_SENT"
    """Transient failure known to have happened before the body was processed (429, connect
    error): safe to retry."""
    REFUSED = "REFUSED"
    """Definite, permanent refusal of the request (4xx): nothing was queued."""
    AUTH_FAILED = "AUTH_FAILED"
    """The account refused the credentials (401/403): nothing was queued, and no later request
    of the run can succeed, so the run stops."""
    FLOW_UNAVAILABLE = "FLOW_UNAVAILABLE"
    """404 (40401): the flow is missing or not active. Nothing was queued, and no later request
    of the run can succeed, so the run stops."""
    FORM_UNAVAILABLE = "FORM_UNAVAILABLE"
    """403/404 on a forms write: the form is not ACTIVE or does not exist. Nothing was
    processed, and no later request for that form can succeed, so the run stops."""


class CallbackVerdict(enum.StrEnum):
    """What the ledger did with a report received on notifyUrl (``accept_callback``)."""

    STORED = "STORED"
    """Its operationId is the one recorded for its batch: kept, the engine applies it."""
    PENDING = "PENDING"
    """Its batch has no operationId recorded yet (the add's answer is not written, or the send
    was ambiguous): kept, a few per batch at most, applied only once its operationId is known
    to be the batch's (recorded, or confirmed by fetching the report from Infobip)."""
    MISMATCH = "MISMATCH"
    """Its batch has another operationId (forged, or the first send of a re-sent batch), or
    another campaignId, or too many reports are pending for it already: not kept."""
    UNKNOWN = "UNKNOWN"
    """Its callbackData is no batch of this ledger: not kept."""


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """The answer to one add-participants request.

    Attributes:
        kind: what is known about the request's fate.
        operation_id: Infobip's operationId when ``kind`` is SENT.
        reason: a short machine-readable reason for anything but SENT (never a secret).
    """

    kind: SendKind
    operation_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ParticipantVerdict:
    """One participant's line in a FlowParticipantsReportResponse."""

    identify_type: str
    identifier: str
    status: str
    error_reason: str | None = None


@dataclass(frozen=True, slots=True)
class OperationReport:
    """A report on one add-participants operation (polled or received on notifyUrl)."""

    operation_id: str
    campaign_id: int
    callback_data: str | None
    participants: tuple[ParticipantVerdict, ...] = field(default_factory=tuple)

    @property
    def is_final(self) -> bool:
        """True when no participant is PENDING any more."""
        return all(p.status != "PENDING" for p in self.participants)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> OperationReport:
        """Build a report from the spec's FlowParticipantsReportResponse JSON.

        Raises:
            ValueError: naming the missing field when the payload is not a report.
        """
        for name in ("operationId", "campaignId", "participants"):
            if name not in payload:
                raise ValueError(f"report payload lacks required field {name!r}")
        verdicts = []
        for index, item in enumerate(payload["participants"]):
            ident = item.get("identifyBy") or {}
            if "identifier" not in ident or "type" not in ident or "status" not in item:
                raise ValueError(f"report participants[{index}] lacks identifyBy or status")
            verdicts.append(
                ParticipantVerdict(
                    identify_type=str(ident["type"]),
                    identifier=str(ident["identifier"]),
                    status=str(item["status"]),
                    error_reason=item.get("errorReason"),
                )
            )
        callback_data = payload.get("callbackData")
        return cls(
            operation_id=str(payload["operationId"]),
            campaign_id=int(payload["campaignId"]),
            callback_data=None if callback_data is None else str(callback_data),
            participants=tuple(verdicts),
        )

    def to_payload(self) -> dict[str, Any]:
        """The report as the spec's FlowParticipantsReportResponse JSON shape."""
        participants: list[dict[str, Any]] = []
        for v in self.participants:
            item: dict[str, Any] = {
                "identifyBy": {"identifier": v.identifier, "type": v.identify_type},
                "status": v.status,
            }
            if v.error_reason is not None:
                item["errorReason"] = v.error_reason
            participants.append(item)
        payload: dict[str, Any] = {
            "operationId": self.operation_id,
            "campaignId": self.campaign_id,
            "participants": participants,
        }
        if self.callback_data is not None:
            payload["callbackData"] = self.callback_data
        return payload


@dataclass(frozen=True, slots=True)
class BatchMember:
    """One identifier of one participant of one batch, as the ledger keeps it.

    ``is_identify_by`` marks the participant's ``identifyBy`` (what reports name it by); the
    other rows are its ``externalId`` and contact identifiers, kept for the identity ledger.
    ``profile_anchor`` is the Infobip profile the identity ledger records the identifier under
    (the identity layer's ``profile_anchor``); None means the person key.
    """

    batch_id: str
    person_key: str
    kind: str
    identifier: str
    is_identify_by: bool
    profile_anchor: str | None = None


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """One outbox row."""

    batch_id: str
    audience: str
    partition_key: str
    campaign_id: int
    attempt: int
    size: int
    state: BatchState
    operation_id: str | None = None
    reason: str | None = None
    resent: bool = False
    """An operator's re-send (``resend_ambiguous``) was issued for it; ``attempt`` counts them."""
    claimed_by: str | None = None
    """The run id that claimed it (CLAIMED and later); None while PLANNED."""


@dataclass(frozen=True, slots=True)
class StatusRow:
    """A participant's last known status in a flow (the durable record of the sync)."""

    campaign_id: int
    person_key: str
    audience: str
    partition_key: str
    batch_id: str | None
    operation_id: str | None
    status: str
    """ACCEPTED, REJECTED, PENDING (report not final by the deadline) or HELD (ambiguous)."""
    error_reason: str | None
    delivered: bool
    """The person is in the flow: ACCEPTED, or REJECTED_PERSON_IN_FLOW on a re-sent batch."""


@dataclass(frozen=True, slots=True)
class QuarantineRow:
    """An input row that preparation refused, with its reason."""

    audience: str
    partition_key: str
    row_id: str
    reason: str
    detail: str | None


@dataclass(frozen=True, slots=True)
class Lease:
    """The run lease of one scope, as the ledger holds it.

    Attributes:
        scope: what the lease covers (by default the whole ledger, i.e. the account).
        holder: the run id of the run holding it.
        description: what that run syncs (audience, partition, flow), for error messages.
        expires_at: wall-clock time (epoch seconds) after which another run may take it over.
    """

    scope: str
    holder: str
    description: str
    expires_at: float


@runtime_checkable
class WireGate(Protocol):
    """The engine's hooks around each attempt of one send (see ``FlowDestination.send``).

    Structurally the client's ``SendGate``: the infobip layer calls it and knows nothing of
    the ledger behind it.
    """

    async def before_issue(self) -> None:
        """The rate slot is held; make "this request is on the wire" durable, or raise."""
        ...

    async def not_processed(self) -> None:
        """The attempt's answer proves Infobip did not process it (nothing was queued)."""
        ...


@runtime_checkable
class FlowDestination(Protocol):
    """Where batches go: one Moments flow API (in production an adapter over the client)."""

    @property
    def notify_url(self) -> str | None:
        """The notifyUrl to put in each request, or None when no receiver is configured."""
        ...

    async def send(
        self,
        campaign_id: int,
        participants: Sequence[Mapping[str, Any]],
        *,
        callback_data: str,
        gate: WireGate | None = None,
    ) -> SendOutcome:
        """Send one add-participants request and say what is known of its fate.

        Must never re-send a body itself once it may have been processed; an exception
        escaping here is treated as AMBIGUOUS. With a ``gate``, every attempt calls
        ``gate.before_issue()`` after its rate slot and right before the request is issued
        (an exception from it means: issue nothing), and ``gate.not_processed()`` as soon as
        an answer proves that attempt was not processed (429, 4xx, refused connection).
        """
        ...

    async def fetch_report(
        self, campaign_id: int, operation_id: str, *, timeout_s: float
    ) -> OperationReport | None:
        """Poll one operation's report until it is final or ``timeout_s`` passes.

        Returns the last report seen (possibly still PENDING) or None when none was obtained.
        """
        ...

    async def check_access(self, campaign_id: int) -> SendOutcome | None:
        """One cheap request that changes nothing, proving the credentials are accepted.

        Returns an AUTH_FAILED (or FLOW_UNAVAILABLE) outcome when the answer proves no send can
        succeed, else None. The engine asks it when it has nothing to send, so that a wrong
        key is noticed even then.
        """
        ...


@runtime_checkable
class LedgerStore(Protocol):
    """The sync's durable state, on a database every run of every machine shares.

    Writes that the exactly-once argument depends on (``claim_batch``, ``mark_sending``,
    ``unmark_sending``) must be durable when the call returns. Every batch state change must
    be one ``_states.BATCH_TRANSITIONS`` allows (else ``IllegalTransition``), and a
    participant's status change one of ``_states.STATUS_TRANSITIONS``.
    """

    def ensure_schema(self) -> None:
        """Create the ledger's tables when missing (idempotent)."""
        ...

    def batches(self, audience: str, partition_key: str, campaign_id: int) -> list[BatchRecord]:
        """Every outbox batch of one (audience, partition, flow)."""
        ...

    def batch_members(self, batch_ids: Sequence[str]) -> list[BatchMember]:
        """The members of the given batches."""
        ...

    def delivered_person_keys(self, campaign_id: int) -> set[str]:
        """Person keys already in the flow (ACCEPTED or REJECTED_PERSON_IN_FLOW)."""
        ...

    def plan_batches(self, batches: Sequence[BatchRecord], members: Sequence[BatchMember]) -> None:
        """Insert PLANNED batches and their members in one transaction."""
        ...

    def discard_planned(self, batch_ids: Sequence[str]) -> None:
        """Forget PLANNED or CLAIMED batches (their bodies never left) and their members."""
        ...

    def claim_batch(self, batch_id: str, run_id: str) -> bool:
        """Durably move one PLANNED batch to CLAIMED by ``run_id`` (compare-and-set).

        True only when exactly this call claimed it; False when it is gone or not PLANNED
        (another run has it). Committed when it returns.
        """
        ...

    def mark_sending(
        self,
        batch_id: str,
        expected: Sequence[BatchState] = (BatchState.CLAIMED,),
        *,
        claimed_by: str | None = None,
        answers: Sequence[BatchRecord] = (),
        resend: bool = False,
    ) -> bool:
        """Durably mark one batch SENDING if it is in one of the ``expected`` states.

        ``resend``: an operator's re-send of a HELD batch; the batch is flagged ``resent``.

        A compare-and-set: returns True only when exactly this call moved the batch to SENDING
        (committed when it returns); False when the batch is gone, in another state, or (with
        ``claimed_by``) claimed by another run. The body may leave only after True.
        ``answers`` (earlier batches' recorded answers, as for ``update_batches``) are written
        in the same transaction, before the mark.
        """
        ...

    def hold_unanswered(self, batch_ids: Sequence[str], reason: str) -> list[str]:
        """Move batches still SENDING to HELD with ``reason`` (a compare-and-set per batch).

        For a run that finds SENDING batches without an answer (their run died). Returns the
        ids it changed; a batch answered meanwhile (a live run without a common lease) is
        left as it is.
        """
        ...

    def unmark_sending(self, batch_id: str, run_id: str) -> bool:
        """Durably move a SENDING batch of ``run_id`` back to CLAIMED: it was not processed.

        False (nothing changed) when the batch is not SENDING under ``run_id``'s claim.
        """
        ...

    def update_batches(self, updates: Sequence[BatchRecord]) -> None:
        """Write state, operationId, reason, attempt, resent flag and claim of batches, in order.

        Atomic; each change must be allowed by ``_states.BATCH_TRANSITIONS`` from the stored
        state, else ``IllegalTransition`` is raised and nothing is written.
        """
        ...

    def upsert_statuses(self, rows: Sequence[StatusRow]) -> None:
        """Insert or replace participant statuses keyed by (campaign_id, person_key)."""
        ...

    def statuses(
        self, campaign_id: int, person_keys: Iterable[str] | None = None
    ) -> list[StatusRow]:
        """Stored statuses of a flow (optionally of some persons only)."""
        ...

    def record_quarantine(self, rows: Sequence[QuarantineRow]) -> None:
        """Replace the quarantine record of the rows' (audience, partition) with these rows."""
        ...

    def replace_quarantine(
        self, audience: str, partition_key: str, rows: Sequence[QuarantineRow]
    ) -> None:
        """Replace the quarantine record of one (audience, partition), even with no rows."""
        ...

    def quarantine(self, audience: str, partition_key: str) -> list[QuarantineRow]:
        """The quarantine record of one (audience, partition)."""
        ...

    def record_callback(self, callback_data: str, report: OperationReport) -> None:
        """Durably keep a report, unchecked: for trusted callers (the receiver's is checked).

        Reports from the notifyUrl receiver go through ``accept_callback`` instead.

        Keyed by (callbackData = batch id, operationId); a later copy replaces an earlier one.
        """
        ...

    def accept_callback(
        self, callback_data: str, operation_id: str, campaign_id: int, payload: str
    ) -> CallbackVerdict:
        """Keep a report received on notifyUrl only if it can be one of the batch's operations.

        The receiver's path (``ledger_callback_handler``): ``payload`` is the report as the
        spec's FlowParticipantsReportResponse JSON text, stored as given (STORED, PENDING) or
        not at all (MISMATCH, UNKNOWN), so nothing a sender invents grows the ledger beyond a
        few rows per real batch. See ``CallbackVerdict``.
        """
        ...

    def callbacks(self, callback_data: Sequence[str]) -> dict[str, list[OperationReport]]:
        """Received reports for the given callbackData values, keyed by callbackData.

        A batch re-sent after an ambiguous send can have two operations, hence a list.
        """
        ...

    def sent_identities(self) -> list[tuple[str, str, str]]:
        """Every identifier whose body may have left, as (kind, identifier, person key).

        The person key is the member's ``profile_anchor`` when it has one: the identity ledger
        models Infobip profiles, and a person of this audience may update an earlier profile.

        Batches SENDING or later, across all audiences: Infobip's People is account-wide.
        """
        ...

    def acquire_lease(
        self, scope: str, holder: str, *, description: str, now: float, ttl_s: float
    ) -> Lease:
        """Take the lease of ``scope`` for ``holder`` if it is free, expired or already ours.

        Atomic on the shared database (two runs can never both get it). Returns the lease as
        it stands afterwards: ``lease.holder == holder`` means it was acquired.
        """
        ...

    def renew_lease(self, scope: str, holder: str, *, now: float, ttl_s: float) -> bool:
        """Extend ``holder``'s lease to ``now + ttl_s``; False when it is no longer held."""
        ...

    def release_lease(self, scope: str, holder: str) -> None:
        """Give the lease up (only if ``holder`` still holds it)."""
        ...

    # -- mirror membership (``_removal_ledger``; states in ``_states.REMOVAL_TRANSITIONS``) ----

    def record_plan(
        self, summary: PlanSummary, people: Sequence[PlanPerson], removals: Sequence[RemovalRecord]
    ) -> None:
        """Record a plan, its (masked) people and its PLANNED removals in one transaction.

        Earlier PLANNED removals of the scope become DISCARDED; REMOVING ones stay.
        """
        ...

    def latest_plan(self, audience: str, partition_key: str) -> PlanSummary | None:
        """The most recent recorded plan of one (audience, partition)."""
        ...

    def plan_people(
        self, plan_id: str, partition_key: str = "", limit: int | None = None
    ) -> list[PlanPerson]:
        """The people of one recorded plan of one partition, identifiers masked."""
        ...

    def removals(
        self,
        audience: str,
        partition_key: str,
        campaign_id: int,
        states: Sequence[RemovalState] | None = None,
    ) -> list[RemovalRecord]:
        """Removals of one (audience, partition, flow), optionally in some states only."""
        ...

    def move_removal(
        self,
        removal_id: str,
        new: RemovalState,
        *,
        reason: str | None = None,
        status: StatusRow | None = None,
    ) -> bool:
        """Compare-and-set one removal to ``new`` (with the person's ``status``, atomically).

        False, writing nothing, when its stored state may not move to ``new``. Durable when it
        returns (the REMOVING mark is written before the DELETE is issued).
        """
        ...

    def identifier_conflicts(self, limit: int) -> list[tuple[str, str]]:
        """Identifiers whose body may have left under two or more profiles, account-wide.

        Read only. Returns up to ``limit`` (kind, identifier) pairs, sorted, the identifier in
        the identity rules' comparable form (two spellings of one e-mail are one identifier);
        a member's profile is its ``profile_anchor``, else its person key. Across every
        audience of the ledger, batches SENDING or later: what would make Infobip merge.
        """
        ...
