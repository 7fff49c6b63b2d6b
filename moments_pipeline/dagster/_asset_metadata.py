"""The metadata each step attaches to its materializations, under ``moments/``.

Pure functions of frames, ``SyncResult`` and ledger rows. ``FlowOutcomes`` is the one place
that says what a stored status means for a person (accepted, already in the flow, rejected,
pending, held): the flow report's metadata and the rejection-rate check both count with it, so
``moments/rejected`` and the check can never disagree. People Infobip reports as already in
the flow (``REJECTED_PERSON_IN_FLOW``) are delivered, not rejected.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import dagster as dg
import pandas as pd

from moments_pipeline.dagster import _metadata as md
from moments_pipeline.dagster._specs import AudienceSpecs
from moments_pipeline.sync import (
    IN_FLOW_REASON,
    MAX_BATCH_SIZE,
    StatusRow,
    SyncParticipant,
    SyncResult,
)

ACCEPTED, ALREADY_IN_FLOW, REJECTED, PENDING, HELD = (
    "accepted",
    "already_in_flow",
    "rejected",
    "pending",
    "held",
)


def outcome(status: StatusRow) -> str:
    """What a stored status means for the person: one of the five outcome names.

    HELD (ambiguous send), NOT_SENT and any status this module does not know are ``held``:
    the person is not known to be in the flow, and the "nothing left pending" check says so.
    """
    if status.status == "ACCEPTED":
        return ACCEPTED
    if status.status == "REJECTED":
        in_flow = status.delivered or status.error_reason == IN_FLOW_REASON
        return ALREADY_IN_FLOW if in_flow else REJECTED
    if status.status == "PENDING":
        return PENDING
    return HELD


@dataclass(frozen=True, slots=True)
class FlowOutcomes:
    """Participants of a flow report by outcome, a namespaced metadata set (``moments/...``).

    ``delivered`` is accepted plus already in the flow; ``rejected`` excludes people already
    in the flow. ``metadata()`` gives the keys ``moments/<field>``.
    """

    accepted: int = 0
    already_in_flow: int = 0
    rejected: int = 0
    pending: int = 0
    held: int = 0
    delivered: int = 0

    def metadata(self) -> dict[str, int]:
        """The counts under their namespaced keys (``moments/accepted``, ...)."""
        return {md.key(name): count for name, count in asdict(self).items()}

    @classmethod
    def of(cls, statuses: Sequence[StatusRow]) -> FlowOutcomes:
        """Count ``statuses`` by ``outcome``."""
        counts = Counter(outcome(s) for s in statuses)
        return cls(
            accepted=counts[ACCEPTED],
            already_in_flow=counts[ALREADY_IN_FLOW],
            rejected=counts[REJECTED],
            pending=counts[PENDING],
            held=counts[HELD],
            delivered=counts[ACCEPTED] + counts[ALREADY_IN_FLOW],
        )

    @property
    def total(self) -> int:
        """Every participant counted."""
        return self.delivered + self.rejected + self.pending + self.held


def source_metadata(frame: pd.DataFrame, **where: str) -> dict[str, Any]:
    """Metadata of the source snapshot; ``where`` names the warehouse, connection and table."""
    return {
        "dagster/row_count": len(frame),
        "dagster/column_schema": md.table_schema(frame),
        md.key("rows"): len(frame),
        **{md.key(k): v for k, v in where.items()},
    }


def participants_metadata(rows_in: int, participants: pd.DataFrame) -> dict[str, Any]:
    """Metadata of the participants asset."""
    by_type = Counter(str(t) for t in participants.get("identify_by_type", []))
    return {
        "dagster/row_count": len(participants),
        md.key("rows_in"): rows_in,
        md.key("participants"): len(participants),
        md.key("participants_by_identify_by_type"): md.counts(by_type),
    }


def quarantine_metadata(quarantine: pd.DataFrame) -> dict[str, Any]:
    """Metadata of the quarantine asset: counts by reason and a masked sample."""
    reasons = Counter(str(r) for r in quarantine.get("reason", []))
    columns = [c for c in quarantine.columns if c != "detail"] + (
        ["detail"] if "detail" in quarantine.columns else []
    )
    return {
        "dagster/row_count": len(quarantine),
        md.key("quarantined"): len(quarantine),
        md.key("quarantined_by_reason"): md.counts(reasons),
        md.key("quarantine_sample"): md.markdown_table(
            md.masked_records(quarantine), [str(c) for c in columns]
        ),
    }


def dry_run_observation(
    specs: AudienceSpecs,
    participants: Sequence[SyncParticipant],
    delivered: set[str],
    quarantine: pd.DataFrame,
    preview_rows: int,
) -> dg.AssetObservation:
    """What a real run would send, as an observation (nothing is materialized or sent)."""
    new = [p for p in participants if p.person_key not in delivered]
    preview = [md.mask_participant(p.body) for p in new[:preview_rows]]
    return dg.AssetObservation(
        asset_key=specs.flow_sync.key,
        metadata={
            md.key("dry_run"): True,
            md.key("campaign_id"): specs.audience.flow.campaign_id,
            md.key("would_send"): len(new),
            md.key("already_in_flow"): len(participants) - len(new),
            md.key("would_send_requests"): math.ceil(len(new) / MAX_BATCH_SIZE),
            md.key("quarantined"): len(quarantine),
            md.key("sample_payload"): dg.MetadataValue.json({"participants": preview}),
        },
    )


def sync_metadata(result: SyncResult, account: Mapping[str, str]) -> dict[str, Any]:
    """Metadata of the flow_sync asset (what this run sent and how fast)."""
    held = [
        {"batch_id": h.batch_id, "size": h.size, "state": h.state, "reason": h.reason}
        for h in result.held_batches
    ]
    return {
        md.key("campaign_id"): result.campaign_id,
        md.key("participants_in"): result.participants_in,
        md.key("already_delivered"): result.already_delivered,
        md.key("sent_requests"): result.batches_sent,
        md.key("batches_planned"): result.batches_planned,
        md.key("operation_ids"): dg.MetadataValue.json(list(result.operation_ids)),
        md.key("held_batches"): dg.MetadataValue.json(held),
        md.key("held"): result.held,
        md.key("duration_s"): round(result.duration_s, 3),
        md.key("participants_per_s"): round(result.participants_per_s, 1),
        md.key("reports_by_callback"): result.reports_by_callback,
        md.key("callbacks_rejected"): result.callbacks_rejected,  # wrong operationId: not applied
        md.key("callbacks_unknown"): result.callbacks_unknown,  # callbackData of no batch
        md.key("reports_by_polling"): result.reports_by_polling,
        # People the engine refused right before sending: since preparation, another audience
        # sent one of their identifiers for a different profile (they are quarantined).
        md.key("refused_at_sync"): len(result.refused_participants),
        md.key("refused_at_sync_by_reason"): md.counts(
            Counter(r.reason for r in result.refused_participants)
        ),
        md.key("refused_at_sync_sample"): md.markdown_table(
            [
                {"person_key": r.person_key_hint, "reason": r.reason, "detail": r.detail}
                for r in result.refused_participants[: md.SAMPLE_ROWS]
            ],
            ["person_key", "reason", "detail"],
        ),
        md.key("account"): dg.MetadataValue.json(dict(account)),
    }


def report_metadata(
    statuses: Sequence[StatusRow],
    quarantine: pd.DataFrame,
    result: SyncResult,
    status_table: str,
) -> dict[str, Any]:
    """Metadata of the flow_report asset: final statuses by outcome and reason, with samples.

    ``status_table`` names the ledger table where the engine persisted these statuses.
    ``moments/by_status`` is the stored status column as it is; the outcome counts and
    ``moments/rejected_by_reason`` leave people already in the flow out of the rejected.
    """
    by_reason = Counter(s.error_reason or "UNSPECIFIED" for s in statuses if outcome(s) == REJECTED)
    rejected = [
        {
            "person_key": md.mask_identifier(r.person_key),
            "identify_type": r.identify_type,
            "identifier": r.identifier_hint,
            "error_reason": r.error_reason or "",
        }
        for r in result.rejected_samples
        if r.error_reason != IN_FLOW_REASON
    ][: md.SAMPLE_ROWS]
    return {
        "dagster/row_count": len(statuses),
        **FlowOutcomes.of(statuses).metadata(),
        md.key("by_status"): md.counts(Counter(s.status for s in statuses)),
        md.key("rejected_by_reason"): md.counts(by_reason),
        # Every quarantined input row of the run: preparation's and the engine's refusals.
        md.key("quarantined"): sum(result.quarantined_by_reason.values()),
        md.key("quarantined_by_reason"): md.counts(dict(result.quarantined_by_reason)),
        md.key("rejected_sample"): md.markdown_table(
            rejected, ["person_key", "identify_type", "identifier", "error_reason"]
        ),
        md.key("quarantine_sample"): md.markdown_table(
            md.masked_records(quarantine), [str(c) for c in quarantine.columns]
        ),
        md.key("status_table"): status_table,
    }
