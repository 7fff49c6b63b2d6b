"""All seven live operations against the emulator, in process and served."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from moments_pipeline.emulator import Emulator
from moments_pipeline.emulator.testing import EmulatorTransport, ServedEmulator
from moments_pipeline.infobip import (
    AddFlowParticipantStatus,
    ApiFormDto,
    AuthError,
    FlowParticipant,
    FormStatus,
    MomentsClient,
    MomentsClientConfig,
    NotFoundError,
    RemovalOutcome,
    ValidationError,
)

from .support import CAMPAIGN_ID, FORM_ID, VirtualClock, participant


async def test_add_then_report(
    client: MomentsClient, emulator: Emulator, vclock: VirtualClock
) -> None:
    model = FlowParticipant.model_validate(participant(2))
    added = await client.add_flow_participants(
        CAMPAIGN_ID, [participant(1), model], callback_data="batch-1"
    )
    assert added.operation_id in emulator.operations
    pending = await client.get_flow_participants_added_report(CAMPAIGN_ID, added.operation_id)
    assert {p.status for p in pending.participants} == {AddFlowParticipantStatus.PENDING}
    await vclock.sleep(1.0)
    report = await client.get_flow_participants_added_report(CAMPAIGN_ID, added.operation_id)
    assert report.callback_data == "batch-1"
    assert [p.identify_by.identifier for p in report.participants] == ["41790000001", "41790000002"]
    assert {p.status for p in report.participants} == {AddFlowParticipantStatus.ACCEPTED}


async def test_unknown_flow_and_unknown_operation(client: MomentsClient) -> None:
    with pytest.raises(NotFoundError) as flow:
        await client.add_flow_participants(999, [participant(1)])
    assert flow.value.error_code == "40401" and flow.value.transient is False
    with pytest.raises(NotFoundError) as op:
        await client.get_flow_participants_added_report(CAMPAIGN_ID, "no-such-operation")
    assert op.value.error_code == "40403"


async def test_remove_people_from_flow(client: MomentsClient, vclock: VirtualClock) -> None:
    await client.add_flow_participants(CAMPAIGN_ID, [participant(7)])
    await vclock.sleep(1.0)
    outcome = await client.remove_people_from_flow(CAMPAIGN_ID, phone="41790000007")
    assert outcome is RemovalOutcome.REMOVED
    # Removing again, with no ambiguous attempt before: the 40006 is reported, not swallowed.
    with pytest.raises(ValidationError) as again:
        await client.remove_people_from_flow(CAMPAIGN_ID, external_id="ext-4179-7")
    assert again.value.error_code == "40006"
    with pytest.raises(ValueError, match="phone, email or external_id"):
        await client.remove_people_from_flow(CAMPAIGN_ID)


async def test_forms_operations(client: MomentsClient, emulator: Emulator) -> None:
    forms = await client.get_forms(limit=10, form_status=FormStatus.ACTIVE)
    assert FORM_ID in {f.id for f in forms.forms}
    form = await client.get_form(FORM_ID)
    assert isinstance(form, ApiFormDto) and form.elements
    assert (await client.increment_view_count(FORM_ID)).status == "OK"
    assert emulator.form_views[FORM_ID] == 1
    for n, encoding in enumerate(("json", "urlencoded", "multipart")):
        status = await client.submit_form_data(
            FORM_ID,
            {"first_name": "Jane", "email": f"jane{n}@example.com"},
            source="web",
            form_campaign="spring",
            encoding=encoding,  # type: ignore[arg-type]
        )
        assert status.status == "OK"
    assert len(emulator.form_submissions) == 3
    with pytest.raises(NotFoundError) as missing:
        await client.get_form("no-such-form")
    assert missing.value.message_id == "NOT_FOUND"


async def test_wrong_key_is_auth_error(emulator_transport: EmulatorTransport) -> None:
    config = MomentsClientConfig(base_url="http://localhost", api_key="wrong-key-1234567")
    clock = VirtualClock()
    async with MomentsClient(
        config,
        transport=emulator_transport,
        clock=clock,
        sleep=clock.sleep,
    ) as c:
        with pytest.raises(AuthError) as info:
            await c.get_forms()
    assert info.value.status_code == 401 and info.value.message_id == "UNAUTHORIZED"
    assert "wrong-key-1234567" not in str(info.value)


@pytest.mark.served
async def test_served_operations(
    served_emulator: ServedEmulator, make_client: Callable[..., MomentsClient]
) -> None:
    async with make_client(served_emulator.base_url) as c:
        added = await c.add_flow_participants(CAMPAIGN_ID, [participant(11), participant(12)])
        report = await c.get_flow_participants_added_report(CAMPAIGN_ID, added.operation_id)
        assert len(report.participants) == 2
        assert (await c.get_form(FORM_ID)).id == FORM_ID
        assert (await c.increment_view_count(FORM_ID)).status == "OK"
        ok = await c.submit_form_data(
            FORM_ID, {"email": "served@example.com"}, encoding="multipart"
        )
        assert ok.status == "OK"
    assert served_emulator.emulator.form_views[FORM_ID] == 1
