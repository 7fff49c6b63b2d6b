"""Turning operation reports into per-person statuses.

Pure functions. A report names participants by ``identifyBy``; the batch's members map that
back to person keys. A batch re-sent after an ambiguous send can have two reports: for each
person the best verdict wins (ACCEPTED, then REJECTED_PERSON_IN_FLOW, then other rejections,
then PENDING), and REJECTED_PERSON_IN_FLOW on a re-sent batch counts as delivered, because the
first (ambiguous) request is what put the person in the flow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from moments_pipeline.identity import rules

from ._columns import BatchMembers
from ._protocols import BatchMember, OperationReport, ParticipantVerdict, StatusRow

IN_FLOW_REASON = "REJECTED_PERSON_IN_FLOW"
"""The enum's spelling (the description says REJECTED_PERSON_ALREADY_IN_FLOW; the enum wins)."""

MISSING_FROM_REPORT = "MISSING_FROM_REPORT"
"""Reason recorded for a person the final report does not mention (kept PENDING)."""


@dataclass(frozen=True, slots=True)
class BatchContext:
    """What is needed to turn a batch's reports into status rows."""

    batch_id: str
    audience: str
    partition_key: str
    campaign_id: int
    resent: bool


def _rank(verdict: ParticipantVerdict) -> int:
    if verdict.status == "ACCEPTED":
        return 0
    if verdict.status == "REJECTED" and verdict.error_reason == IN_FLOW_REASON:
        return 1
    if verdict.status == "REJECTED":
        return 2
    return 3


def _key(kind: str, identifier: str) -> tuple[str, str]:
    # A member's kind may be "<TYPE>:<sender>"; a report names the bare type.
    identify_type = kind.split(":", 1)[0]
    return (identify_type, rules.comparable(identify_type, identifier))


def statuses_from_reports(
    context: BatchContext,
    members: Iterable[BatchMember],
    reports: Sequence[OperationReport],
) -> list[StatusRow]:
    """One status row per person of the batch, from its report(s).

    A person absent from every report stays PENDING with reason MISSING_FROM_REPORT, so the
    "nothing left PENDING" check catches it instead of it silently vanishing.
    """
    best: dict[tuple[str, str], tuple[ParticipantVerdict, str]] = {}
    for report in reports:
        for verdict in report.participants:
            key = _key(verdict.identify_type, verdict.identifier)
            current = best.get(key)
            if current is None or _rank(verdict) < _rank(current[0]):
                best[key] = (verdict, report.operation_id)
    fallback_operation = reports[-1].operation_id if reports else None
    rows: list[StatusRow] = []
    for person_key, kind, identifier in BatchMembers.from_members(members).identify_by():
        found = best.get(_key(kind, identifier))
        reason: str | None
        if found is None:
            status, reason, operation_id = "PENDING", MISSING_FROM_REPORT, fallback_operation
        else:
            verdict, operation_id = found
            status, reason = verdict.status, verdict.error_reason
        delivered = status == "ACCEPTED" or (
            context.resent and status == "REJECTED" and reason == IN_FLOW_REASON
        )
        rows.append(_status_row(context, person_key, operation_id, status, reason, delivered))
    return rows


def _status_row(
    context: BatchContext,
    person_key: str,
    operation_id: str | None,
    status: str,
    reason: str | None,
    delivered: bool,
) -> StatusRow:
    """One person's status row in the batch's context."""
    return StatusRow(
        campaign_id=context.campaign_id,
        person_key=person_key,
        audience=context.audience,
        partition_key=context.partition_key,
        batch_id=context.batch_id,
        operation_id=operation_id,
        status=status,
        error_reason=reason,
        delivered=delivered,
    )


def statuses_without_report(
    context: BatchContext,
    members: Iterable[BatchMember],
    *,
    status: str,
    reason: str | None,
    operation_id: str | None = None,
) -> list[StatusRow]:
    """One row per person of a batch that has no report (HELD, NOT_SENT, refused, PENDING)."""
    return [
        _status_row(context, person_key, operation_id, status, reason, False)
        for person_key, _, _ in BatchMembers.from_members(members).identify_by()
    ]
