"""Audience builders shared by the identity tests."""

from __future__ import annotations

from typing import Any

from moments_pipeline.config import AudienceConfig, parse_audience


def audience(**overrides: Any) -> AudienceConfig:
    """A small audience: identifyBy email, externalId, two emails, two phones, CH default."""
    data: dict[str, Any] = {
        "name": "test_audience",
        "source": {"table": "s.t", "row_id_column": "rid"},
        "identity": {
            "identify_by": {"column": "email", "type": "EMAIL"},
            "external_id": "cid",
            "emails": ["email", "email2"],
            "phones": ["phone", "phone2"],
            "default_region": "CH",
        },
        "person": {"attributes": {"firstName": "first_name"}},
        "variables": {"score": "score"},
        "flow": {"campaign_id": 42},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return parse_audience(data)


COLUMNS = ["rid", "email", "email2", "cid", "phone", "phone2", "first_name", "score"]
