"""MomentsSyncClient: the blocking facade, against the served emulator."""

from __future__ import annotations

import pytest

from moments_pipeline.emulator import QueuedFault
from moments_pipeline.emulator.testing import ServedEmulator
from moments_pipeline.infobip import (
    AmbiguousSendError,
    MomentsClientConfig,
    MomentsSyncClient,
    RemovalOutcome,
    rate_budget_for,
)

from .support import API_KEY, CAMPAIGN_ID, FORM_ID, participant


@pytest.mark.served
def test_sync_facade_runs_every_operation(served_emulator: ServedEmulator) -> None:
    config = MomentsClientConfig(base_url=served_emulator.base_url, api_key=API_KEY)
    emulator = served_emulator.emulator
    with MomentsSyncClient(config) as client:
        assert client.async_client.rate_budget is rate_budget_for(config)
        added = client.add_flow_participants(CAMPAIGN_ID, [participant(1)], callback_data="s")
        emulator.advance(1.0)
        report = client.wait_for_report(
            CAMPAIGN_ID, added.operation_id, deadline_s=5, initial_interval_s=0.05
        )
        assert report.is_complete and report.callback_data == "s"
        assert client.get_flow_participants_added_report(CAMPAIGN_ID, added.operation_id) == report
        assert (
            client.remove_people_from_flow(CAMPAIGN_ID, phone="41790000001")
            is RemovalOutcome.REMOVED
        )
        assert client.get_forms().forms
        assert client.get_form(FORM_ID).id == FORM_ID
        assert client.increment_view_count(FORM_ID).status == "OK"
        assert client.submit_form_data(FORM_ID, {"email": "sync@example.com"}).status == "OK"
        emulator.faults.enqueue(QueuedFault(kind="drop_after", operation="add-flow-participants"))
        with pytest.raises(AmbiguousSendError):
            client.add_flow_participants(CAMPAIGN_ID, [participant(2)])
    with pytest.raises(RuntimeError, match="closed"):
        client.get_forms()
