"""The one mask: exact outputs pinned, and the same text on every path that shows an identifier."""

from __future__ import annotations

import pandas as pd
import pytest

from moments_pipeline import dagster as md
from moments_pipeline.identity import (
    IDENTITY_COLUMNS,
    mask_anchor,
    mask_identifier,
    prepare_audience,
)
from moments_pipeline.sync import DuplicateIdentifierError, SyncParticipant
from moments_pipeline.sync._identity_check import check_against_prior, load_prior_profiles
from tests.identity.helpers import COLUMNS, audience


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("jane.doe@example.com", "ja***@ex***.com"),
        ("ana@x.com", "an***@x***.com"),
        ("a@b", "a***@b***"),  # domain without a dot
        ("41793026727", "41*******27"),  # phone: a quarter kept on each side
        ("12025550101", "12*******01"),
        ("10001", "1***1"),  # external id
        ("customer-000042", "cus*********042"),  # at most three kept on each side
        ("abcde", "a***e"),
        ("abcd", "****"),  # four characters or fewer: all masked
        ("ab", "**"),
        ("", ""),
        (None, ""),
        (42, "**"),  # not text: masked as its text
        ("Zoë.Åberg@exämple.ch", "Zo***@ex***.ch"),
        ("Ünïcødé-ïd-42", "Ünï*******-42"),  # code points, not bytes
    ],
)
def test_mask_identifier(value: object, masked: str) -> None:
    assert mask_identifier(value) == masked


@pytest.mark.parametrize(
    ("anchor", "masked"),
    [
        ("EXTERNAL_ID:10001", "EXTERNAL_ID:1***1"),
        ("EXTERNAL_ID:1", "EXTERNAL_ID:*"),
        ("EXTERNAL_ID:a:b:c", "EXTERNAL_ID:a***c"),  # an externalId may contain ":"
        ("EMAIL:ana@x.com", "EMAIL:an***@x***.com"),
        ("PHONE:41793026727", "PHONE:41*******27"),
        # Channel kinds keep their sender readable; the identifier after it may hold ":".
        ("FACEBOOK:page-1:123456789", "FACEBOOK:page-1:12*****89"),
        ("LINE:None:U1234abcd", "LINE:None:U1*****cd"),
        ("APPLE_BUSINESS_CHAT:biz:urn:mbid:AQ", "APPLE_BUSINESS_CHAT:biz:ur*******AQ"),
        ("p1", "**"),  # a bare key: masked whole
        ("Ünïcødé:x@y.z", "Ünïcødé:x***@y***.z"),
    ],
)
def test_mask_anchor_for_every_kind(anchor: str, masked: str) -> None:
    assert mask_anchor(anchor) == masked


def test_masks_never_show_the_middle() -> None:
    for value in ("jane.doe@example.com", "41793026727", "customer-000042"):
        assert value[3:-3] not in mask_identifier(value)
        assert value[3:-3] not in mask_anchor(f"EXTERNAL_ID:{value}")


PHONE_RAW, PHONE = "+41 79 302 67 27", "41793026727"
SPEC = audience(name="masks")


def test_every_path_masks_one_identifier_identically() -> None:
    """Quarantine detail, engine refusal detail, engine errors and Dagster metadata agree."""
    ledger = [("PHONE", PHONE, "EXTERNAL_ID:10001"), ("EXTERNAL_ID", "10001", "EXTERNAL_ID:10001")]
    row = {c: None for c in COLUMNS} | {
        "rid": "r1",
        "email": "other@x.com",
        "cid": "20002",
        "phone": PHONE_RAW,
    }
    data = pd.DataFrame([row])
    expected = f"PHONE {mask_identifier(PHONE)} already sent for profile EXTERNAL_ID:1***1"

    quarantined = prepare_audience(
        data, SPEC, prior_identities=pd.DataFrame(ledger, columns=IDENTITY_COLUMNS)
    )
    (quarantine_detail,) = quarantined.quarantine["detail"].tolist()

    body = {
        "identifyBy": {"identifier": "other@x.com", "type": "EMAIL"},
        "person": {
            "externalId": "20002",
            "contactInformation": {"phone": [{"number": PHONE}]},
        },
    }
    _, refused = check_against_prior(
        [SyncParticipant("EXTERNAL_ID:20002", body)], load_prior_profiles(ledger)
    )
    (refusal,) = refused

    duplicate = DuplicateIdentifierError("PHONE", PHONE, "EXTERNAL_ID:1", "EXTERNAL_ID:2")
    preview = md.mask_participant(body)

    assert mask_identifier(PHONE) == "41*******27"
    assert quarantine_detail.startswith(expected)
    assert refusal.detail == quarantine_detail
    assert f"PHONE {mask_identifier(PHONE)} belongs" in str(duplicate)
    assert preview["person"]["contactInformation"]["phone"][0]["number"] == "41*******27"
    assert md.mask_identifier(PHONE) == mask_identifier(PHONE)
    for text in (quarantine_detail, refusal.detail, str(duplicate), repr(preview)):
        assert PHONE not in text and "10001" not in text and "20002" not in text
