"""Metadata builders: namespaced keys, masked identifiers and small markdown tables.

Everything the assets attach to a materialization passes through here, so one place decides
what a person's identifier looks like in the Dagster UI: masked (enough of it to find the row,
not enough to use it). Secrets never reach this module.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import dagster as dg

from moments_pipeline.dagster._specs import METADATA_PREFIX

SAMPLE_ROWS = 10
_MAX_CELL = 60


def key(name: str) -> str:
    """Namespace a metadata key: ``key("accepted") == "moments/accepted"``."""
    return f"{METADATA_PREFIX}{name}"


def mask_identifier(value: object) -> str:
    """Mask the middle of an identifier (email, phone, external id) for display.

    ``jane.doe@example.com`` -> ``ja***@ex***.com``; ``41793026727`` -> ``417*****727``.
    """
    if value is None:
        return ""
    text = str(value)
    if "@" in text:
        local, _, domain = text.rpartition("@")
        head, dot, tld = domain.rpartition(".")
        masked_domain = f"{head[:2]}***{dot}{tld}" if dot else f"{domain[:2]}***"
        return f"{local[:2]}***@{masked_domain}"
    if len(text) <= 4:
        return "*" * len(text)
    keep = max(1, min(3, len(text) // 4))
    return f"{text[:keep]}{'*' * (len(text) - 2 * keep)}{text[-keep:]}"


def mask_participant(participant: Mapping[str, Any]) -> dict[str, Any]:
    """Copy a FlowParticipant dict with every identifier masked (for dry-run previews)."""
    masked = copy.deepcopy(dict(participant))
    identify_by = masked.get("identifyBy")
    if isinstance(identify_by, dict) and "identifier" in identify_by:
        identify_by["identifier"] = mask_identifier(identify_by["identifier"])
    person = masked.get("person")
    if isinstance(person, dict):
        if "externalId" in person:
            person["externalId"] = mask_identifier(person["externalId"])
        contacts = person.get("contactInformation")
        if isinstance(contacts, dict):
            for item in contacts.get("phone", []) or []:
                if isinstance(item, dict) and "number" in item:
                    item["number"] = mask_identifier(item["number"])
            for item in contacts.get("email", []) or []:
                if isinstance(item, dict) and "address" in item:
                    item["address"] = mask_identifier(item["address"])
    return masked


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN from pandas
        return ""
    text = " ".join(str(value).split())  # one line: markdown tables break on newlines
    text = text.replace("|", "\\|")
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> dg.MetadataValue:
    """A markdown table of ``rows`` (already masked) restricted to ``columns``."""
    if not rows:
        return dg.MetadataValue.md("_none_")
    lines = [
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join("---" for _ in columns) + " |",
    ]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return dg.MetadataValue.md("\n".join(lines))


def counts(values: Mapping[str, int] | Iterable[tuple[str, int]]) -> dg.MetadataValue:
    """A JSON metadata value of counts, sorted by key for stable display."""
    items = values.items() if isinstance(values, Mapping) else values
    return dg.MetadataValue.json({str(k): int(v) for k, v in sorted(items)})
