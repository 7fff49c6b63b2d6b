"""The value a sync run returns: what happened to every participant, counted, never logged.

The Dagster layer turns this into metadata and asset checks; the engine itself only fills it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class HeldBatch:
    """A batch that was not (or may not have been) delivered, and why.

    Attributes:
        batch_id: the outbox batch id (also the request's callbackData).
        size: participants in the batch.
        state: its outbox state (HELD, SENDING, PLANNED).
        reason: machine-readable reason, e.g. ``AMBIGUOUS_SEND:TransportError``.
    """

    batch_id: str
    size: int
    state: str
    reason: str


@dataclass(frozen=True, slots=True)
class RejectedSample:
    """One rejected participant, for a human to look at."""

    person_key: str
    identify_type: str
    identifier_hint: str
    """The identifier with its middle masked: enough to find the row, not to leak it."""
    error_reason: str | None


@dataclass(frozen=True, slots=True)
class RefusedSample:
    """A participant the engine's identity re-check refused (quarantined, never sent).

    Attributes:
        person_key_hint: the person key with its identifier masked.
        reason: ``WOULD_MERGE_PRIOR_PROFILES`` or ``IDENTIFIER_SENT_FOR_OTHER_PERSON``.
        detail: which identifiers touch which profiles, identifiers masked.
        rows: input rows quarantined for this participant.
    """

    person_key_hint: str
    reason: str
    detail: str
    rows: int


@dataclass(slots=True)
class SyncResult:
    """Everything a run did, for the orchestrator to record and check.

    Attributes:
        audience: audience name.
        partition_key: partition the run synced.
        campaign_id: the flow.
        participants_in: participants handed to the engine (after preparation).
        already_delivered: participants skipped because the ledger has them in the flow.
        status_counts: final status of each participant this run covered (ACCEPTED, REJECTED,
            PENDING, HELD, NOT_SENT).
        reason_counts: REJECTED participants by ``errorReason`` (or request refusal reason).
        delivered: participants now in the flow (ACCEPTED, or REJECTED_PERSON_IN_FLOW on a
            re-sent batch), including ``already_delivered``.
        quarantined_by_reason: input rows quarantined, by reason: those preparation refused
            (passed through) plus those of participants the engine's identity re-check refused.
        refused_participants: participants the identity re-check refused (never sent); their
            rows are in ``quarantined_by_reason`` and in the ledger's quarantine record.
        operation_ids: operationIds of the batches this run covered.
        batches_sent: requests sent by this run.
        batches_planned: batches this run covered (new and resumed).
        held_batches: batches not delivered, with their reasons.
        skipped_batches: batches this run planned but did not send because their SENDING mark
            found them claimed by another run (should not happen under the run lease).
        reports_by_callback: operations whose final report came by notifyUrl callback.
        reports_by_polling: operations whose final report came by polling.
        callbacks_rejected: notifyUrl reports not applied because their operationId is not
            their batch's (forged, or the first send of a re-sent batch): refused by the
            engine, plus those the receiver refused when the caller adds its count.
        callbacks_unknown: notifyUrl reports whose callbackData is no batch of the ledger,
            as counted by the receiver (the caller adds them; the engine never sees them).
        duration_s: wall time of the run.
        rejected_samples: a few rejected participants.
    """

    audience: str
    partition_key: str
    campaign_id: int
    participants_in: int = 0
    already_delivered: int = 0
    status_counts: Counter[str] = field(default_factory=Counter)
    reason_counts: Counter[str] = field(default_factory=Counter)
    delivered: int = 0
    quarantined_by_reason: Counter[str] = field(default_factory=Counter)
    refused_participants: list[RefusedSample] = field(default_factory=list)
    operation_ids: list[str] = field(default_factory=list)
    batches_sent: int = 0
    batches_planned: int = 0
    held_batches: list[HeldBatch] = field(default_factory=list)
    skipped_batches: list[HeldBatch] = field(default_factory=list)
    reports_by_callback: int = 0
    reports_by_polling: int = 0
    callbacks_rejected: int = 0
    callbacks_unknown: int = 0
    duration_s: float = 0.0
    rejected_samples: list[RejectedSample] = field(default_factory=list)

    @property
    def participants_per_s(self) -> float:
        """Participants covered by this run per second of its duration."""
        covered = sum(self.status_counts.values())
        return covered / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def pending(self) -> int:
        """Participants whose report was still PENDING at the deadline."""
        return self.status_counts.get("PENDING", 0)

    @property
    def held(self) -> int:
        """Participants in batches held or not sent (ambiguous or failed before sending)."""
        return self.status_counts.get("HELD", 0) + self.status_counts.get("NOT_SENT", 0)

    @property
    def complete(self) -> bool:
        """True when nothing is left PENDING or HELD."""
        return self.pending == 0 and self.held == 0

    def as_metadata(self) -> dict[str, Any]:
        """Plain JSON-able summary (no identifiers), for orchestrator metadata."""
        return {
            "audience": self.audience,
            "partition_key": self.partition_key,
            "campaign_id": self.campaign_id,
            "participants_in": self.participants_in,
            "already_delivered": self.already_delivered,
            "delivered": self.delivered,
            "status_counts": dict(self.status_counts),
            "reason_counts": dict(self.reason_counts),
            "quarantined_by_reason": dict(self.quarantined_by_reason),
            "batches_planned": self.batches_planned,
            "batches_sent": self.batches_sent,
            "held_batches": [
                {"batch_id": h.batch_id, "size": h.size, "state": h.state, "reason": h.reason}
                for h in self.held_batches
            ],
            "refused_at_sync": len(self.refused_participants),
            "skipped_batches": [
                {"batch_id": h.batch_id, "size": h.size, "state": h.state, "reason": h.reason}
                for h in self.skipped_batches
            ],
            "operation_ids": len(self.operation_ids),
            "reports_by_callback": self.reports_by_callback,
            "reports_by_polling": self.reports_by_polling,
            "callbacks_rejected": self.callbacks_rejected,
            "callbacks_unknown": self.callbacks_unknown,
            "duration_s": round(self.duration_s, 3),
            "participants_per_s": round(self.participants_per_s, 1),
        }
