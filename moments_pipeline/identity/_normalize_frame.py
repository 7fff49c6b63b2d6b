"""Normalizing every identifier column of an audience frame into one long identifier table.

The long table has one row per identifier use: ``row`` (input position), ``kind`` (``EMAIL``,
``PHONE``, ``EXTERNAL_ID`` or ``<TYPE>:<sender>`` for other identifyBy types), ``code`` (dense
id of the (kind, value) pair; ``NormalizedFrame.code_values`` holds the values, see
``use_values``), ``column`` (source column) and ``is_idb`` (the use is the row's identifyBy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from moments_pipeline.config import AudienceConfig, IdentifierType
from moments_pipeline.identity._emails import Normalized, normalize_emails
from moments_pipeline.identity._phones import normalize_phones
from moments_pipeline.identity._reasons import DroppedValueReason, QuarantineReason
from moments_pipeline.identity._text import as_text, to_arrow

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
        row_reason: Quarantine reason per row, None for rows that may be sent.
        uses: The long identifier table of the rows that may be sent.
        dropped: Rejected secondary values: ``row``, ``column``, ``value``, ``reason``.
        code_values: The value of each identifier code (``uses['code']`` indexes it).
        code_kinds: Identifier kinds in code order; codes of ``code_kinds[i]`` start at
            ``kind_starts[i]``.
        kind_starts: First code of each kind.
    """

    row_reason: np.ndarray
    uses: pd.DataFrame
    dropped: pd.DataFrame
    code_values: pa.Array
    code_kinds: list[str]
    kind_starts: np.ndarray

    def key_texts(self, codes: np.ndarray) -> pa.Array:
        """``<kind>:<value>`` of identifier codes (null where the code is -1)."""
        missing = codes < 0
        safe = np.where(missing, 0, codes)
        kind = np.searchsorted(self.kind_starts, safe, side="right") - 1
        prefixes = np.array([f"{k}:" for k in self.code_kinds], dtype=object)[kind]
        text = pc.binary_join_element_wise(
            pa.array(prefixes, type=pa.large_string()),
            self.code_values.take(pa.array(safe)),
            pa.scalar("", pa.large_string()),
        )
        return pc.if_else(pa.array(missing), pa.scalar(None, pa.large_string()), text)


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

    positions = np.arange(n, dtype=np.int64)
    # One part per identifier column, identifyBy first so that a value listed both as the
    # identifyBy and as a contact keeps the identifyBy flag when deduplicated below.
    parts: list[tuple[str, str, pa.Array, np.ndarray, bool]] = []
    dropped: list[pd.DataFrame] = []

    def add(kind: str, name: str, values: pd.Series, is_idb: bool) -> None:
        keep = alive & values.notna().to_numpy()
        rows = positions[keep]
        # The whole column (nulls included) is encoded; ``rows`` picks the codes that count.
        parts.append((kind, name, to_arrow(values), rows, is_idb))

    add(idb_kind, identity.identify_by.column, idb.values, True)
    if identity.external_id:
        add(EXTERNAL_ID, identity.external_id, ext, False)
    for kind, names, reason_code in (
        ("EMAIL", identity.emails, DroppedValueReason.INVALID_EMAIL),
        ("PHONE", identity.phones, DroppedValueReason.INVALID_PHONE),
    ):
        for name in names:
            normalized = column(kind, name)
            # The identifyBy column listed as a contact too: its uses are already there.
            if (kind, name) != (idb_kind, identity.identify_by.column):
                add(kind, name, normalized.values, False)
            bad = alive & normalized.invalid.to_numpy()
            if bad.any():
                dropped.append(
                    pd.DataFrame(
                        {
                            "row": positions[bad],
                            "column": name,
                            "value": as_text(frame[name].iloc[positions[bad]]).to_numpy(),
                            "reason": reason_code.value,
                        }
                    )
                )
    uses, code_values, kind_starts = _uses_table(parts, n)
    dropped_frame = (
        pd.concat(dropped, ignore_index=True)
        if dropped
        else pd.DataFrame({"row": [], "column": [], "value": [], "reason": []})
    )
    kinds = list(dict.fromkeys(kind for kind, *_ in parts))
    return NormalizedFrame(reason, uses, dropped_frame, code_values, kinds, kind_starts)


def use_values(uses: pd.DataFrame, code_values: pa.Array) -> np.ndarray:
    """The normalized value of each use (object array of str)."""
    taken = code_values.take(pa.array(uses["code"].to_numpy()))
    return np.asarray(taken.to_numpy(zero_copy_only=False), dtype=object)


def _uses_table(
    parts: list[tuple[str, str, pa.Array, np.ndarray, bool]], n_rows: int
) -> tuple[pd.DataFrame, pa.Array, np.ndarray]:
    """The long table, with a dense code per (kind, value) computed once per kind.

    Returns:
        The table, the value of each code, and the first code of each kind (in order of
        first appearance in ``parts``).
    """
    kinds = list(dict.fromkeys(kind for kind, *_ in parts))
    columns = list(dict.fromkeys(name for _, name, *_ in parts))
    codes: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * len(parts)
    kept_rows = [p[3] for p in parts]
    dictionaries: list[pa.Array] = [pa.array([], type=pa.large_string())]
    starts: list[int] = []
    offset = 0
    for kind in kinds:
        starts.append(offset)
        members = [i for i, part in enumerate(parts) if part[0] == kind]
        # One memo table for all columns of a kind: the chunks share one dictionary.
        encoded = pc.dictionary_encode(pa.chunked_array([parts[i][2] for i in members]))
        for i, chunk in zip(members, encoded.chunks, strict=True):
            indices = pc.fill_null(chunk.indices, 0).to_numpy(zero_copy_only=False)
            codes[i] = indices[parts[i][3]].astype(np.int64) + offset
        dictionary = encoded.chunks[0].dictionary if encoded.num_chunks else pa.array([])
        offset += len(dictionary)
        dictionaries.append(dictionary.cast(pa.large_string()))
        # The same value in two columns of one row is one use (the earlier part's).
        for later, j in enumerate(members[1:], start=1):
            seen = np.full(n_rows, -1, dtype=np.int64)
            unique = np.ones(len(codes[j]), dtype=bool)
            for i in members[:later]:
                seen[kept_rows[i]] = codes[i]
                unique &= seen[kept_rows[j]] != codes[j]
                seen[kept_rows[i]] = -1
            kept_rows[j], codes[j] = kept_rows[j][unique], codes[j][unique]
    sizes = [len(r) for r in kept_rows]
    row = np.concatenate(kept_rows)
    code = np.concatenate(codes)
    del codes, kept_rows
    # Stable by row: within a row the parts keep their order (identifyBy first).
    order = np.argsort(row, kind="stable")
    row = row[order]
    code = code[order]
    # Small per-use labels (int8) keep this long table light.
    part_of = np.repeat(np.arange(len(parts), dtype=np.int8), sizes)[order]
    del order
    kind_of_part = np.array([kinds.index(p[0]) for p in parts], dtype=np.int8)
    column_of_part = np.array([columns.index(p[1]) for p in parts], dtype=np.int8)
    table = pd.DataFrame(
        {
            "row": row,
            "kind": pd.Categorical.from_codes(kind_of_part[part_of], categories=kinds),
            "column": pd.Categorical.from_codes(column_of_part[part_of], categories=columns),
            "is_idb": np.array([p[4] for p in parts])[part_of],
            "code": code,
        },
        copy=False,
    )
    return table, pa.concat_arrays(dictionaries), np.array(starts, dtype=np.int64)
