"""Response models read the spec's own examples, live quirks included."""

from __future__ import annotations

from typing import Any

from moments_pipeline.infobip import (
    AddFlowParticipantStatus,
    ApiFormDto,
    ErrorStatusReason,
    FlowParticipantsReportResponse,
    FormType,
)


def _example(spec: dict[str, Any], path: str, method: str) -> Any:
    content = spec["paths"][path][method]["responses"]["200"]["content"]["application/json"]
    examples = content.get("examples") or {}
    return next(iter(examples.values()))["value"]


def test_report_example_parses(openapi_spec: dict[str, Any]) -> None:
    raw = _example(openapi_spec, "/moments/1/flows/{campaignId}/participants/report", "get")
    report = FlowParticipantsReportResponse.model_validate(raw)
    assert report.campaign_id == 200000000000001
    assert report.participants[1].status is AddFlowParticipantStatus.REJECTED
    assert report.participants[1].error_reason is ErrorStatusReason.REJECTED_INVALID_CONTACT
    assert report.is_complete


def test_form_example_with_colonless_offset(openapi_spec: dict[str, Any]) -> None:
    raw = _example(openapi_spec, "/forms/1/forms/{id}", "get")
    assert raw["createdAt"].endswith("+0000")
    form = ApiFormDto.model_validate(raw)
    assert form.form_type is FormType.OPT_IN
    assert form.created_at is not None and form.created_at.utcoffset() is not None


def test_reason_spellings_and_unknown_reasons() -> None:
    base = {"operationId": "o", "campaignId": 1}
    report = FlowParticipantsReportResponse.model_validate(
        {
            **base,
            "participants": [
                {
                    "identifyBy": {"identifier": "1", "type": "PHONE"},
                    "status": "REJECTED",
                    "errorReason": "REJECTED_PERSON_ALREADY_IN_FLOW",
                },
                {
                    "identifyBy": {"identifier": "2", "type": "PHONE"},
                    "status": "REJECTED",
                    "errorReason": "REJECTED_SOMETHING_NEW",
                },
                {"identifyBy": {"identifier": "3", "type": "PHONE"}, "status": "PENDING"},
            ],
        }
    )
    assert report.participants[0].error_reason is ErrorStatusReason.REJECTED_PERSON_IN_FLOW
    assert report.participants[1].error_reason == "REJECTED_SOMETHING_NEW"
    assert report.pending == 1 and not report.is_complete
