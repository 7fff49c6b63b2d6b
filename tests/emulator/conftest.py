"""Helpers shared by the emulator tests."""

from __future__ import annotations

from typing import Any

FLOW = 200000000000001
ADD = f"/moments/1/flows/{FLOW}/participants"
REPORT = f"/moments/1/flows/{FLOW}/participants/report"


def email(address: str, **person: Any) -> dict[str, Any]:
    participant: dict[str, Any] = {"identifyBy": {"identifier": address, "type": "EMAIL"}}
    if person:
        participant["person"] = person
    return participant


def phone(number: str, **person: Any) -> dict[str, Any]:
    participant: dict[str, Any] = {"identifyBy": {"identifier": number, "type": "PHONE"}}
    if person:
        participant["person"] = person
    return participant
