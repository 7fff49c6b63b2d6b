"""The flow report's metadata and its checks count people the same way, and truthfully.

People Infobip reports as already in the flow (``REJECTED_PERSON_IN_FLOW``) are in the flow:
delivered (``moments/already_in_flow``), never in ``moments/rejected`` nor in the rejection
rate, whether their batch was re-sent or not.
"""

from __future__ import annotations

import pandas as pd

from moments_pipeline.config import parse_audience
from moments_pipeline.dagster import _asset_metadata, _checks, build_audience_specs
from moments_pipeline.dagster._specs import CHECK_NOTHING_PENDING, CHECK_REJECTION_RATE
from moments_pipeline.sync import (
    IN_FLOW_REASON,
    BatchRecord,
    BatchState,
    RejectedSample,
    StatusRow,
    SyncResult,
)

AUDIENCE = parse_audience(
    {
        "name": "vip",
        "source": {"table": "crm.customers"},
        "identity": {"identify_by": {"column": "email", "type": "EMAIL"}},
        "flow": {"campaign_id": 1},
        "report": {"max_rejection_rate": 0.2},
    },
    "audiences/vip.yaml",
)
SPECS = build_audience_specs(AUDIENCE)


def _status(key: str, status: str, reason: str | None = None, delivered: bool = False):
    return StatusRow(1, key, "vip", "", "b1", "op1", status, reason, delivered)


STATUSES = [
    _status("EMAIL:a@x.com", "ACCEPTED", delivered=True),
    _status("EMAIL:b@x.com", "ACCEPTED", delivered=True),
    _status("EMAIL:c@x.com", "REJECTED", IN_FLOW_REASON),  # first send: already in the flow
    _status("EMAIL:d@x.com", "REJECTED", IN_FLOW_REASON, delivered=True),  # re-sent batch
    _status("EMAIL:e@x.com", "REJECTED", "REJECTED_INVALID_CONTACT"),
]


def _evidence() -> _checks.SentEvidence:
    return _checks.SentEvidence(owners={}, sent_person_keys=frozenset(), leaked_rows=frozenset())


def _recorded(statuses: list[StatusRow], unresolved: list[BatchRecord] | None = None):
    return _checks.RecordedSync(statuses, unresolved or [], _evidence(), len(statuses))


def test_people_already_in_the_flow_are_delivered_not_rejected() -> None:
    outcomes = _asset_metadata.FlowOutcomes.of(STATUSES)
    assert outcomes == _asset_metadata.FlowOutcomes(
        accepted=2, already_in_flow=2, rejected=1, delivered=4
    )
    result = SyncResult("vip", "", 1)
    result.rejected_samples = [
        RejectedSample("EMAIL:c@x.com", "EMAIL", "c***", IN_FLOW_REASON),
        RejectedSample("EMAIL:e@x.com", "EMAIL", "e***", "REJECTED_INVALID_CONTACT"),
    ]
    meta = _asset_metadata.report_metadata(STATUSES, pd.DataFrame(), result, "status")
    assert meta["moments/accepted"] == 2
    assert meta["moments/already_in_flow"] == 2
    assert meta["moments/rejected"] == 1
    assert meta["moments/delivered"] == 4
    assert meta["moments/rejected_by_reason"].value == {"REJECTED_INVALID_CONTACT": 1}
    assert meta["moments/by_status"].value == {"ACCEPTED": 2, "REJECTED": 3}  # as stored
    sample = meta["moments/rejected_sample"].value
    assert "REJECTED_INVALID_CONTACT" in sample and IN_FLOW_REASON not in sample


def test_the_rejection_rate_check_counts_what_the_metadata_counts() -> None:
    results = {r.check_name: r for r in _checks.report_check_results(SPECS, _recorded(STATUSES))}
    rate = results[CHECK_REJECTION_RATE]
    meta = _asset_metadata.report_metadata(STATUSES, pd.DataFrame(), SyncResult("vip", "", 1), "")
    assert rate.metadata["rejected"].value == meta["moments/rejected"] == 1
    assert rate.metadata["already_in_flow"].value == meta["moments/already_in_flow"] == 2
    assert rate.metadata["rejection_rate"].value == 0.2
    assert rate.passed  # 1 of 5 at a limit of 20 %; counting the in-flow ones would be 60 %
    assert results[CHECK_NOTHING_PENDING].passed


def test_held_and_unsent_people_and_unresolved_batches_fail_nothing_left_pending() -> None:
    for status in ("PENDING", "HELD", "NOT_SENT"):
        statuses = [*STATUSES, _status("EMAIL:f@x.com", status, "AMBIGUOUS_SEND:TransportError")]
        results = {
            r.check_name: r for r in _checks.report_check_results(SPECS, _recorded(statuses))
        }
        assert not results[CHECK_NOTHING_PENDING].passed, status
    held = BatchRecord("b9", "vip", "", 1, 0, 3, BatchState.HELD, reason="AMBIGUOUS_SEND:x")
    results = {
        r.check_name: r for r in _checks.report_check_results(SPECS, _recorded(STATUSES, [held]))
    }
    pending = results[CHECK_NOTHING_PENDING]
    assert not pending.passed
    assert pending.metadata["held_batches"].value == 1
    assert pending.metadata["held_batch_sample"].value[0]["reason"] == "AMBIGUOUS_SEND:x"
