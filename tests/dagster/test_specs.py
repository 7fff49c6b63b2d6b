"""The translator is a pure function of the audience definition."""

from __future__ import annotations

import copy
from pathlib import Path

import dagster as dg

from moments_pipeline.config import load_audiences
from moments_pipeline.dagster import (
    CHECK_NO_CONFLICT_SENT,
    CHECK_NO_QUARANTINE_LEAK,
    CHECK_NOTHING_PENDING,
    CHECK_REJECTION_RATE,
    build_audience_specs,
    mask_identifier,
    mask_participant,
)

AUDIENCES = Path(__file__).resolve().parents[2] / "audiences"


def test_every_sample_audience_gets_five_assets_in_its_own_group() -> None:
    audiences = load_audiences(AUDIENCES)
    assert len(audiences) >= 2
    for name, audience in audiences.items():
        specs = build_audience_specs(audience)
        keys = [s.key for s in specs.assets]
        assert keys == [
            dg.AssetKey([name, step])
            for step in ("source", "participants", "quarantine", "flow_sync", "flow_report")
        ]
        assert {s.group_name for s in specs.assets} == {name}
        assert {c.name for c in specs.checks} == {
            CHECK_REJECTION_RATE,
            CHECK_NOTHING_PENDING,
            CHECK_NO_CONFLICT_SENT,
            CHECK_NO_QUARANTINE_LEAK,
        }
        assert {c.asset_key for c in specs.checks} == {specs.flow_report.key}
        deps = {s.key: {d.asset_key for d in s.deps} for s in specs.assets}
        assert deps[specs.flow_sync.key] == {specs.participants.key, specs.quarantine.key}
        assert deps[specs.flow_report.key] == {specs.flow_sync.key}
        assert specs.flow_sync.metadata["moments/campaign_id"] == audience.flow.campaign_id
        assert specs.tables.participants == f"{name}__participants"


def test_translation_is_pure_and_deterministic() -> None:
    audience = load_audiences(AUDIENCES)["cart_abandoners"]
    before = audience.model_dump()
    first, second = build_audience_specs(audience), build_audience_specs(audience)
    assert first == second
    assert audience.model_dump() == before


def test_masking_keeps_a_hint_but_not_the_identifier() -> None:
    assert mask_identifier("jane.doe@example.com") == "ja***@ex***.com"
    masked_phone = mask_identifier("41793026727")
    assert masked_phone.startswith("41") and masked_phone.endswith("27")
    assert "3026" not in masked_phone
    body = {
        "identifyBy": {"identifier": "41793026727", "type": "PHONE"},
        "person": {
            "externalId": "C100001",
            "contactInformation": {
                "phone": [{"number": "41793026727"}],
                "email": [{"address": "jane.doe@example.com"}],
            },
        },
        "variables": {"cartValue": 12.5},
    }
    original = copy.deepcopy(body)
    masked = mask_participant(body)
    assert body == original
    text = repr(masked)
    for secret in ("41793026727", "jane.doe@example.com", "C100001"):
        assert secret not in text
    assert masked["variables"] == {"cartValue": 12.5}
