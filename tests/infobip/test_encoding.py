"""Request encoding: the orjson fast path, its structural checks, and the form encodings."""

from __future__ import annotations

import orjson
import pytest

from moments_pipeline.infobip import FlowParticipant
from moments_pipeline.infobip._encoding import encode_add_participants, encode_form_data


def _p(i: int) -> dict[str, object]:
    return {"identifyBy": {"identifier": f"4179300{i:04d}", "type": "PHONE"}}


def test_dicts_and_models_encode_to_the_spec_shape() -> None:
    model = FlowParticipant.model_validate(
        {
            "identifyBy": {"identifier": "a@example.com", "type": "EMAIL"},
            "person": {
                "externalId": "x1",
                "contactInformation": {"email": [{"address": "a@example.com"}]},
            },
        }
    )
    body = orjson.loads(encode_add_participants([_p(1), model], "https://cb/x", "batch-1"))
    assert body["participants"][0] == _p(1)
    assert body["participants"][1] == {
        "identifyBy": {"identifier": "a@example.com", "type": "EMAIL"},
        "person": {
            "externalId": "x1",
            "contactInformation": {"email": [{"address": "a@example.com"}]},
        },
    }
    assert body["notifyUrl"] == "https://cb/x"
    assert body["callbackData"] == "batch-1"


@pytest.mark.parametrize("count", [0, 1001])
def test_participant_count_bounds(count: int) -> None:
    with pytest.raises(ValueError, match=r"1\.\.1000 participants, got"):
        encode_add_participants([_p(i) for i in range(count)], None, None)


def test_thousand_participants_accepted() -> None:
    body = orjson.loads(encode_add_participants([_p(i) for i in range(1000)], None, None))
    assert len(body["participants"]) == 1000
    assert "notifyUrl" not in body


def test_missing_identify_by_names_the_index() -> None:
    with pytest.raises(ValueError, match=r"participants\[1\]\.identifyBy"):
        encode_add_participants([_p(0), {"person": {}}], None, None)


def test_non_sequence_refused() -> None:
    with pytest.raises(TypeError):
        encode_add_participants(_p(0), None, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"participants\[0\]"):
        encode_add_participants(["nope"], None, None)  # type: ignore[list-item]


def test_form_encodings() -> None:
    data = {"first_name": "Jane", "age": 33, "agree": True}
    body, ctype = encode_form_data(data, "json")
    assert (orjson.loads(body), ctype) == (data, "application/json")
    body, ctype = encode_form_data(data, "urlencoded")
    assert body == b"first_name=Jane&age=33&agree=true"
    assert ctype == "application/x-www-form-urlencoded"
    body, ctype = encode_form_data(data, "multipart")
    boundary = ctype.split("boundary=")[1]
    assert body.count(f"--{boundary}".encode()) == 4
    assert b'name="agree"\r\n\r\ntrue\r\n' in body
    with pytest.raises(ValueError, match="encoding"):
        encode_form_data(data, "xml")
