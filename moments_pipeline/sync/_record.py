"""Record keeping of a run: status rows of unresolved batches, counts, refused participants.

Pure functions over a run's batches and its ``SyncResult``; split from ``_engine`` so that the
engine module is about sending.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from moments_pipeline.identity import mask_anchor, mask_identifier

from ._identity_check import RefusedParticipant
from ._protocols import BatchState, QuarantineRow, StatusRow
from ._reports import statuses_from_reports, statuses_without_report
from ._result import RefusedSample, RejectedSample, SyncResult
from ._run_parts import RunBatch


def unresolved_rows(batch: RunBatch) -> list[StatusRow]:
    """Status rows of a batch the run ends without a final report for."""
    record = batch.record
    if record.state is BatchState.FAILED:
        reason = f"REQUEST_REFUSED:{record.reason}"
        return statuses_without_report(
            batch.context, batch.members, status="REJECTED", reason=reason
        )
    if record.state is BatchState.SENT:  # still PENDING at the deadline
        if batch.reports:
            return statuses_from_reports(batch.context, batch.members, batch.reports)
        return statuses_without_report(
            batch.context,
            batch.members,
            status="PENDING",
            reason="REPORT_DEADLINE",
            operation_id=record.operation_id,
        )
    if record.state in (BatchState.PLANNED, BatchState.CLAIMED):  # never left
        return statuses_without_report(
            batch.context, batch.members, status="NOT_SENT", reason=record.reason
        )
    # HELD, or SENDING when the run was cut short
    return statuses_without_report(
        batch.context, batch.members, status="HELD", reason=record.reason
    )


def count_rows(
    result: SyncResult,
    rows: Sequence[StatusRow],
    batches: Mapping[str, RunBatch],
    max_samples: int,
) -> None:
    """Add status rows to the result's counts (and keep a few masked rejected samples)."""
    for row in rows:
        result.status_counts[row.status] += 1
        if row.status != "ACCEPTED":
            result.reason_counts[row.error_reason or row.status] += 1
        if row.delivered:
            result.delivered += 1
        if row.status == "REJECTED" and len(result.rejected_samples) < max_samples:
            kind, identifier = next(
                (kind, identifier)
                for key, kind, identifier in batches[row.batch_id or ""].members.identify_by()
                if key == row.person_key
            )
            result.rejected_samples.append(
                RejectedSample(row.person_key, kind, mask_identifier(identifier), row.error_reason)
            )


def refused_records(
    result: SyncResult, refused: Sequence[RefusedParticipant], audience: str, partition: str
) -> list[QuarantineRow]:
    """Quarantine rows (one per source row) for refused participants; counted in ``result``."""
    rows: list[QuarantineRow] = []
    for item in refused:
        p = item.participant
        row_ids = p.source_rows or (p.person_key,)
        rows.extend(
            QuarantineRow(audience, partition, row_id, item.reason, item.detail)
            for row_id in row_ids
        )
        result.refused_participants.append(
            RefusedSample(mask_anchor(p.person_key), item.reason, item.detail, len(row_ids))
        )
    return rows
