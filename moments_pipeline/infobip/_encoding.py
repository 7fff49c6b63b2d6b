"""Request bodies, encoded fast.

The hot path is add-flow-participants: up to 1000 participants per request, 10 requests/s. Plain
dicts in the spec's FlowParticipant shape go straight to orjson; models are dumped by alias.
Only cheap structural checks run here (count, presence of ``identifyBy``); the server does the
rest and the identity layer has already normalised the data.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import orjson
from pydantic import BaseModel

from ._models import FlowParticipant

__all__ = ["encode_add_participants", "encode_form_data"]

MAX_PARTICIPANTS = 1000


def _dump_model(value: object) -> object:
    """Fallback of orjson for values it does not know (models, other mappings)."""
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True, exclude_none=True, mode="json")
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def encode_add_participants(
    participants: Sequence[Mapping[str, Any] | FlowParticipant],
    notify_url: str | None,
    callback_data: str | None,
) -> bytes:
    """Encode an AddFlowParticipantsRequest body.

    Raises:
        TypeError: If ``participants`` is not a sequence of dicts/FlowParticipant models.
        ValueError: If it holds fewer than 1 or more than 1000 participants, if one lacks
            ``identifyBy.identifier``/``identifyBy.type``, or if ``notifyUrl``/``callbackData``
            are too long.
    """
    if isinstance(participants, (str, bytes, Mapping)) or not isinstance(participants, Sequence):
        raise TypeError("participants must be a sequence of FlowParticipant dicts or models")
    count = len(participants)
    if not 1 <= count <= MAX_PARTICIPANTS:
        raise ValueError(
            f"add-flow-participants takes 1..{MAX_PARTICIPANTS} participants, got {count}"
        )
    for index, participant in enumerate(participants):
        if isinstance(participant, FlowParticipant):
            continue
        if not isinstance(participant, Mapping):
            raise TypeError(
                f"participants[{index}] is a {type(participant).__name__}, "
                "expected a FlowParticipant dict or model"
            )
        identify_by = participant.get("identifyBy")
        if (
            not isinstance(identify_by, Mapping)
            or not identify_by.get("identifier")
            or not identify_by.get("type")
        ):
            raise ValueError(
                f"participants[{index}].identifyBy must hold a non-empty 'identifier' and 'type'"
            )
    body: dict[str, Any] = {
        "participants": participants if isinstance(participants, list) else list(participants)
    }
    if notify_url is not None:
        if len(notify_url) > 1000:
            raise ValueError("notifyUrl is longer than 1000 characters")
        body["notifyUrl"] = notify_url
    if callback_data is not None:
        if len(callback_data) > 2000:
            raise ValueError("callbackData is longer than 2000 characters")
        body["callbackData"] = callback_data
    return orjson.dumps(body, default=_dump_model)


def _form_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _form_pairs(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in data.items():
        if isinstance(value, (list, tuple)):
            pairs.extend((key, _form_value(item)) for item in value)
        elif value is not None:
            pairs.append((key, _form_value(value)))
    return pairs


def encode_form_data(data: Mapping[str, Any], encoding: str) -> tuple[bytes, str]:
    """Encode submit-form-data fields; return ``(body, content_type)``.

    Args:
        data: Field id -> value (plain values: str, number, bool, or a list for groups).
        encoding: ``"json"``, ``"urlencoded"`` or ``"multipart"`` (the three the spec accepts).
    """
    if not isinstance(data, Mapping) or not data:
        raise ValueError("submit-form-data needs a non-empty mapping of field values")
    if encoding == "json":
        return orjson.dumps(dict(data), default=_dump_model), "application/json"
    if encoding == "urlencoded":
        return urlencode(_form_pairs(data)).encode(), "application/x-www-form-urlencoded"
    if encoding == "multipart":
        boundary = secrets.token_hex(16)
        parts = []
        for key, value in _form_pairs(data):
            name = key.replace("\\", "\\\\").replace('"', '\\"')
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{value}\r\n".encode()
            )
        parts.append(f"--{boundary}--\r\n".encode())
        return b"".join(parts), f"multipart/form-data; boundary={boundary}"
    raise ValueError(f"encoding must be 'json', 'urlencoded' or 'multipart', not {encoding!r}")
