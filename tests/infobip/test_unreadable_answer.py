"""A 2xx add-participants answer without a readable operationId is ambiguous, never re-sent.

The emulator always answers well-formed bodies, so this one server misbehaviour is played by a
transport at the client's seam.
"""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from moments_pipeline.infobip import AmbiguousSendError, MomentsClient, MomentsClientConfig
from tests.infobip.support import API_KEY, CAMPAIGN_ID, participant


@pytest.mark.parametrize("body", [b"", b"{}", b"<html>proxy page</html>", b'{"operationId": 7}'])
async def test_unreadable_2xx_answer_is_ambiguous_and_sent_once(body: bytes) -> None:
    calls: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    config = MomentsClientConfig(base_url="http://127.0.0.1:9", api_key=SecretStr(API_KEY))
    async with MomentsClient(config, transport=httpx.MockTransport(answer)) as client:
        with pytest.raises(AmbiguousSendError) as caught:
            await client.add_flow_participants(
                CAMPAIGN_ID, [participant(1)], callback_data="batch-1"
            )
    assert len(calls) == 1
    assert caught.value.campaign_id == CAMPAIGN_ID
    assert caught.value.callback_data == "batch-1"
    assert caught.value.status_code == 200
    assert API_KEY not in str(caught.value) and API_KEY not in repr(caught.value)
