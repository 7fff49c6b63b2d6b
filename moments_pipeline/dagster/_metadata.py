"""Metadata builders: namespaced keys, masked identifiers and small markdown tables.

Everything the assets attach to a materialization passes through here; identifiers are masked
with the pipeline's one mask (``moments_pipeline.identity.mask_identifier``: enough of it to find
the row, not enough to use it). Secrets never reach this module. The step-by-step metadata sets
built from these are in ``_asset_metadata``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import dagster as dg
import pandas as pd

from moments_pipeline.dagster._specs import METADATA_PREFIX
from moments_pipeline.dagster._tables import is_listlike, printable

# The one mask of the pipeline (``identity/_mask``): the UI shows an identifier exactly as the
# quarantine details and the engine's refusal details do.
from moments_pipeline.identity import mask_identifier as mask_identifier

SAMPLE_ROWS = 10
_MAX_CELL = 60
#: Columns of a quarantine sample shown as they are (every other column is masked).
_SHOWN_PLAIN = ("row_id", "reason", "detail")


def key(name: str) -> str:
    """Namespace a metadata key: ``key("accepted") == "moments/accepted"``."""
    return f"{METADATA_PREFIX}{name}"


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


def table_schema(frame: pd.DataFrame) -> dg.TableSchema:
    """The frame's columns and dtypes as a Dagster table schema."""
    return dg.TableSchema(
        columns=[dg.TableColumn(name=str(c), type=str(t)) for c, t in frame.dtypes.items()]
    )


def masked_records(frame: pd.DataFrame, limit: int = SAMPLE_ROWS) -> list[dict[str, Any]]:
    """Up to ``limit`` rows with every column but the row id, reason and detail masked.

    Control characters become U+FFFD (``printable``): a sample is for reading.
    """
    return [
        {
            k: printable(v if k in _SHOWN_PLAIN else mask_identifier(v)) if _present(v) else ""
            for k, v in record.items()
        }
        for record in frame.head(limit).to_dict(orient="records")
    ]


def _present(value: object) -> bool:
    if value is None or is_listlike(value):
        return value is not None
    return not pd.isna(value)
