"""A participants report checked once and kept as JSON bytes: the receiver's cheap path.

A ``notifyUrl`` callback carries a FlowParticipantsReportResponse of up to 1000 participants.
Building the pydantic model costs about 2 ms of CPU per report (and a handler that only stores
the report then serializes it again, another 1-2 ms), on a thread that shares the GIL with the
loop pacing the sends. :func:`read_report` instead parses the body with orjson and checks the
structure the model requires (operationId, integer campaignId, participants with identifyBy
{identifier, type} and a known status, errorReason text or null) in one pass; only a body that
check does not vouch for (snake_case names, numbers as strings, anything odd) goes through the
model, so what is accepted never widens. The result, :class:`RawReport`, holds the body as the
spec's JSON bytes with the keys a handler needs to store it, and builds the typed model on demand.

Constraint: the body handed on is canonical in the one respect the sync engine relies on: the
description's spelling ``REJECTED_PERSON_ALREADY_IN_FLOW`` is rewritten to the enum's
``REJECTED_PERSON_IN_FLOW`` (as the model does), re-encoding the body only when it occurs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ._models import AddFlowParticipantStatus, ErrorStatusReason, FlowParticipantsReportResponse

__all__ = ["RawReport", "read_report"]

_STATUSES = frozenset(status.value for status in AddFlowParticipantStatus)
_PENDING = AddFlowParticipantStatus.PENDING.value
_IN_FLOW_ALIAS = "REJECTED_PERSON_ALREADY_IN_FLOW"
_IN_FLOW = ErrorStatusReason.REJECTED_PERSON_IN_FLOW.value
_IN_FLOW_ALIAS_BYTES = _IN_FLOW_ALIAS.encode()


@dataclass(frozen=True, slots=True)
class RawReport:
    """A checked FlowParticipantsReportResponse as JSON bytes, with its keys pulled out.

    Attributes:
        body: The report as the spec's JSON (camelCase), valid for
            ``FlowParticipantsReportResponse``.
        operation_id: ``operationId``.
        campaign_id: ``campaignId``.
        callback_data: ``callbackData`` (None when absent).
        participants: Number of participants in the report.
        pending: Number of them still PENDING.
    """

    body: bytes
    operation_id: str
    campaign_id: int
    callback_data: str | None
    participants: int
    pending: int

    def __repr__(self) -> str:
        # The body holds personal data (identifiers): keep it out of reprs and logs.
        return (
            f"RawReport(operation_id={self.operation_id!r}, campaign_id={self.campaign_id}, "
            f"participants={self.participants}, pending={self.pending})"
        )

    @property
    def text(self) -> str:
        """The body as text (e.g. for a JSON column)."""
        return self.body.decode()

    def model(self) -> FlowParticipantsReportResponse:
        """The typed report (parses the body; costs what the typed path costs)."""
        return FlowParticipantsReportResponse.model_validate_json(self.body)

    @classmethod
    def from_model(
        cls, report: FlowParticipantsReportResponse, body: bytes | None = None
    ) -> RawReport:
        """The raw form of a typed report.

        Args:
            report: The typed report.
            body: The JSON it was validated from, to keep as is instead of serializing the
                model (then ``body`` may use snake_case names: only for :meth:`model`); the
                model is serialized anyway when it holds the non-canonical in-flow reason.
        """
        if body is None or _IN_FLOW_ALIAS_BYTES in body:
            body = report.model_dump_json(by_alias=True, exclude_none=True).encode()
        return cls(
            body=body,
            operation_id=report.operation_id,
            campaign_id=report.campaign_id,
            callback_data=report.callback_data,
            participants=len(report.participants),
            pending=report.pending,
        )


def read_report(
    body: bytes, *, want_model: bool = False
) -> tuple[RawReport, FlowParticipantsReportResponse | None]:
    """Check a report body; return its raw form, and the model if it was built.

    Args:
        body: The POSTed JSON.
        want_model: The caller needs the model anyway (no raw handler): validate with it
            directly, in one pass, and keep ``body`` as is in the raw form.

    Raises:
        pydantic.ValidationError: The body is not a FlowParticipantsReportResponse.
    """
    if not want_model:
        raw = _fast_check(body)
        if raw is not None:
            return raw, None
    report = FlowParticipantsReportResponse.model_validate_json(body)
    # A body the fast check refused is re-serialized, so raw handlers get the spec's names.
    return RawReport.from_model(report, body if want_model else None), report


def _fast_check(body: bytes) -> RawReport | None:
    """The report if the single pass vouches for it, else None (the model decides)."""
    try:
        doc: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(doc) is not dict:
        return None
    operation_id = doc.get("operationId")
    campaign_id = doc.get("campaignId")
    callback_data = doc.get("callbackData")
    participants = doc.get("participants")
    if (
        type(operation_id) is not str
        or type(campaign_id) is not int
        or (callback_data is not None and type(callback_data) is not str)
        or type(participants) is not list
    ):
        return None
    pending = 0
    renamed = False
    for item in participants:
        if type(item) is not dict:
            return None
        ident = item.get("identifyBy")
        if (
            type(ident) is not dict
            or type(ident.get("identifier")) is not str
            or type(ident.get("type")) is not str
        ):
            return None
        sender = ident.get("sender")
        if sender is not None and type(sender) is not str:
            return None
        status = item.get("status")
        if type(status) is not str or status not in _STATUSES:
            return None
        if status == _PENDING:
            pending += 1
        reason = item.get("errorReason")
        if reason is not None:
            if type(reason) is not str:
                return None
            if reason == _IN_FLOW_ALIAS:
                item["errorReason"] = _IN_FLOW
                renamed = True
    return RawReport(
        body=orjson.dumps(doc) if renamed else body,
        operation_id=operation_id,
        campaign_id=campaign_id,
        callback_data=callback_data,
        participants=len(participants),
        pending=pending,
    )
