"""Normalizing every identifier column of an audience frame into one long identifier table.

The long table has one row per identifier use: ``row`` (input position), ``kind`` (``EMAIL``,
``PHONE``, ``EXTERNAL_ID`` or ``<TYPE>:<sender>`` for other identifyBy types), ``value``,
``code`` (dense id of the (kind, value) pair), ``column`` (source column) and ``is_idb`` (the
use is the row's identifyBy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from moments_pipeline.config import AudienceConfig, IdentifierType
from moments_pipeline.identity._emails import Normalized, normalize_emails
from moments_pipeline.identity._phones import normalize_phones
from moments_pipeline.identity._reasons import DroppedValueReason, QuarantineReason
from moments_pipeline.identity._text import as_text

MAX_EXTERNAL_ID_LENGTH = 256
MAX_OTHER_IDENTIFIER_LENGTH = 255
EXTERNAL_ID = "EXTERNAL_ID"


def identify_by_kind(audience: AudienceConfig) -> str:
    """Identifier kind of the audience's identifyBy (``EMAIL``, ``PHONE`` or ``TYPE:sender``)."""
    spec = audience.identity.identify_by
    if spec.type in (IdentifierType.EMAIL, IdentifierType.PHONE):
        return spec.type.value
    return f"{spec.type.value}:{spec.sender}"


@dataclass
class NormalizedFrame:
    """All identifiers of a frame, normalized.

    Attributes:
        identify_by: Normalized identifyBy per row (NA when missing/invalid).
        external_id: Normalized externalId per row (NA when missing/invalid).
        row_reason: Quarantine reason per row, None for rows that may be sent.
        uses: The long identifier table of the rows that may be sent.
        dropped: Rejected secondary values: ``row``, ``column``, ``value``, ``reason``.
    """

    identify_by: pd.Series
    external_id: pd.Series
    row_reason: np.ndarray
    uses: pd.DataFrame
    dropped: pd.DataFrame


def _normalize_identify_by(
    frame: pd.DataFrame, audience: AudienceConfig, phone_kw: dict
) -> Normalized:
    spec = audience.identity.identify_by
    raw = frame[spec.column]
    if spec.type is IdentifierType.EMAIL:
        return normalize_emails(raw)
    if spec.type is IdentifierType.PHONE:
        return normalize_phones(raw, **phone_kw)
    text = as_text(raw)
    invalid = (text.str.len() > MAX_OTHER_IDENTIFIER_LENGTH).fillna(False).astype(bool)
    return Normalized(text.mask(invalid, pd.NA), invalid)


def normalize_frame(frame: pd.DataFrame, audience: AudienceConfig) -> NormalizedFrame:
    """Normalize identifyBy, externalId, emails and phones of ``frame`` (positional index).

    Args:
        frame: Source rows with a default RangeIndex.
        audience: The audience definition.

    Returns:
        The normalized identifiers and per-row quarantine reasons.
    """
    identity = audience.identity
    n = len(frame)
    phone_kw = {
        "regions": frame[identity.region_column] if identity.region_column else None,
        "default_region": identity.default_region,
    }
    cache: dict[tuple[str, str], Normalized] = {}

    def column(kind: str, name: str) -> Normalized:
        if (kind, name) not in cache:
            raw = frame[name]
            cache[kind, name] = (
                normalize_emails(raw) if kind == "EMAIL" else normalize_phones(raw, **phone_kw)
            )
        return cache[kind, name]

    idb_kind = identify_by_kind(audience)
    if idb_kind in ("EMAIL", "PHONE"):
        idb = column(idb_kind, identity.identify_by.column)
    else:
        idb = _normalize_identify_by(frame, audience, phone_kw)
    idb_missing = as_text(frame[identity.identify_by.column]).isna().to_numpy()

    if identity.external_id:
        ext_text = as_text(frame[identity.external_id])
        ext_invalid = (ext_text.str.len() > MAX_EXTERNAL_ID_LENGTH).fillna(False).astype(bool)
        ext = ext_text.mask(ext_invalid, pd.NA)
    else:
        ext = pd.Series(pd.NA, index=frame.index, dtype=idb.values.dtype)
        ext_invalid = pd.Series(False, index=frame.index)

    reason = np.full(n, None, dtype=object)
    reason[ext_invalid.to_numpy()] = QuarantineReason.INVALID_EXTERNAL_ID.value
    reason[idb.invalid.to_numpy()] = QuarantineReason.INVALID_IDENTIFY_BY.value
    reason[idb_missing] = QuarantineReason.MISSING_IDENTIFY_BY.value
    alive = pd.isna(reason)

    parts: list[pd.DataFrame] = []
    dropped: list[pd.DataFrame] = []
    positions = np.arange(n, dtype=np.int64)

    def add(kind: str, name: str, values: pd.Series, is_idb: bool) -> None:
        keep = alive & values.notna().to_numpy()
        parts.append(
            pd.DataFrame(
                {
                    "row": positions[keep],
                    "kind": kind,
                    "value": values.to_numpy()[keep],
                    "column": name,
                    "is_idb": is_idb,
                }
            )
        )

    add(idb_kind, identity.identify_by.column, idb.values, True)
    if identity.external_id:
        add(EXTERNAL_ID, identity.external_id, ext, False)
    for kind, names, reason_code in (
        ("EMAIL", identity.emails, DroppedValueReason.INVALID_EMAIL),
        ("PHONE", identity.phones, DroppedValueReason.INVALID_PHONE),
    ):
        for name in names:
            normalized = column(kind, name)
            add(kind, name, normalized.values, False)
            bad = alive & normalized.invalid.to_numpy()
            if bad.any():
                dropped.append(
                    pd.DataFrame(
                        {
                            "row": positions[bad],
                            "column": name,
                            "value": as_text(frame[name]).to_numpy()[bad],
                            "reason": reason_code.value,
                        }
                    )
                )
    uses = pd.concat(parts, ignore_index=True)
    uses["kind"] = uses["kind"].astype("category")
    uses["column"] = uses["column"].astype("category")
    # A column listed both as identifyBy and as a contact gives the same use twice; keep the
    # identifyBy one (sorted first) so the flag survives.
    uses = uses.sort_values(["row", "is_idb"], ascending=[True, False], kind="stable")
    uses = uses.drop_duplicates(["row", "kind", "value"]).reset_index(drop=True)
    uses["code"] = _codes(uses)
    dropped_frame = (
        pd.concat(dropped, ignore_index=True)
        if dropped
        else pd.DataFrame({"row": [], "column": [], "value": [], "reason": []})
    )
    return NormalizedFrame(idb.values, ext, reason, uses, dropped_frame)


def _codes(uses: pd.DataFrame) -> np.ndarray:
    """Dense code per (kind, value) pair, factorizing each kind separately (no string concat)."""
    codes = np.empty(len(uses), dtype=np.int64)
    offset = 0
    kinds = uses["kind"].cat.codes.to_numpy()
    values = uses["value"].to_numpy()
    for k in np.unique(kinds):
        where = np.flatnonzero(kinds == k)
        local, uniques = pd.factorize(values[where])
        codes[where] = local + offset
        offset += len(uniques)
    return codes
