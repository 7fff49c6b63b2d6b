"""The API key never shows up in logs, exception text or reprs, over a run full of errors."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from moments_pipeline.emulator import QueuedFault
from moments_pipeline.emulator.testing import ServedEmulator
from moments_pipeline.infobip import (
    MomentsClient,
    MomentsClientConfig,
    MomentsError,
    MomentsSyncClient,
)

from .support import API_KEY, CAMPAIGN_ID, FORM_ID, assert_no_secret, participant


@pytest.mark.served
async def test_key_absent_from_logs_errors_and_reprs(
    served_emulator: ServedEmulator,
    make_client: Callable[..., MomentsClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    emulator = served_emulator.emulator
    for kind, operation in [
        ("500", "add-flow-participants"),
        ("drop_after", "submit-form-data"),
        ("429", "get-forms"),
        ("503", "get-form"),
        ("drop_before", "increment-view-count"),
    ]:
        emulator.faults.enqueue(QueuedFault(kind=kind, operation=operation))
    errors: list[MomentsError] = []
    async with make_client(served_emulator.base_url, read_timeout_s=2) as client:
        calls = [
            client.add_flow_participants(CAMPAIGN_ID, [participant(1)]),
            client.submit_form_data(FORM_ID, {"email": "a@example.com"}),
            client.get_forms(),
            client.get_form(FORM_ID),
            client.increment_view_count(FORM_ID),
            client.get_form("missing-form"),
            client.add_flow_participants(404404, [participant(2)]),
        ]
        for call in calls:
            try:
                await call
            except MomentsError as exc:
                errors.append(exc)
        texts = [repr(client), repr(client.config), str(client.config), repr(client.stats)]
    async with MomentsClient(
        MomentsClientConfig(base_url=served_emulator.base_url, api_key=API_KEY + "-wrong")
    ) as wrong:
        try:
            await wrong.get_forms()
        except MomentsError as exc:
            errors.append(exc)
    assert len(errors) == 6  # ambiguous x3, 404 x2, 401
    for error in errors:
        assert_no_secret(error)
        assert_no_secret(error, API_KEY + "-wrong")
    assert not any(API_KEY in text for text in texts)
    # The capture did see the run: our warnings and the HTTP library's own debug lines.
    assert any(
        r.name == "moments_pipeline.infobip" and r.levelno == logging.WARNING
        for r in caplog.records
    )
    assert any(r.name.startswith(("httpx", "httpcore")) for r in caplog.records)
    assert API_KEY not in caplog.text


def test_sync_facade_repr_and_errors(served_emulator: ServedEmulator) -> None:
    config = MomentsClientConfig(base_url=served_emulator.base_url, api_key=API_KEY)
    with MomentsSyncClient(config) as client:
        assert API_KEY not in repr(client)
        with pytest.raises(MomentsError) as info:
            client.get_form("missing-form")
        assert_no_secret(info.value)


def test_the_leak_check_itself_can_fail() -> None:
    with pytest.raises(AssertionError, match="leaked"):
        assert_no_secret(MomentsError(f"oops {API_KEY}"))
    try:
        raise MomentsError("outer") from ValueError(API_KEY)
    except MomentsError as outer:
        with pytest.raises(AssertionError, match="leaked"):
            assert_no_secret(outer)
