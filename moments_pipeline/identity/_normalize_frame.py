"""Normalizing every identifier column of an audience frame into one long identifier table.

The long table has one row per identifier use: ``row`` (input position), ``kind`` (``EMAIL``,
``PHONE``, ``EXTERNAL_ID`` or ``<TYPE>:<sender>`` for other identifyBy types), ``code`` (dense
id of the (kind, value) pair; ``NormalizedFrame.code_values`` holds the values, see
``use_values``), ``column`` (source column) and ``is_idb`` (the use is the row's identifyBy).

Every refused value is accounted for: a row whose identifyBy or externalId is unusable gets a
quarantine reason AND a detail; a refused email or phone of any other column is listed in
``dropped`` with its reason, a detail and the value masked (``_mask``), never silently lost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from moments_pipeline.config import AudienceConfig
from moments_pipeline.identity._emails import Normalized, normalize_emails
from moments_pipeline.identity._mask import mask_identifier
from moments_pipeline.identity._phones import normalize_phones
from moments_pipeline.identity._reasons import DROPPED_DETAILS, QuarantineReason
from moments_pipeline.identity._rules import EXTERNAL_ID as EXTERNAL_ID
from moments_pipeline.identity._rules import identify_by_kind as _kind_of_identify_by
from moments_pipeline.identity._text import read_text, shown_text, to_arrow

MAX_EXTERNAL_ID_LENGTH = 256
MAX_OTHER_IDENTIFIER_LENGTH = 255
#: C0 controls and DEL: never part of an identifier (PostgreSQL TEXT cannot even hold NUL);
#: nor U+FFFD, which stands for unreadable text (and for NUL where a backend replaced it).
_CONTROL = r"[\x00-\x1f\x7f\ufffd]"
DROPPED_COLUMNS = ["row", "column_name", "value_masked", "reason", "detail"]


def identify_by_kind(audience: AudienceConfig) -> str:
    """Identifier kind of the audience's identifyBy (``rules.identify_by_kind``)."""
    spec = audience.identity.identify_by
    return _kind_of_identify_by(spec.type.value, spec.sender)


@dataclass
class NormalizedFrame:
    """All identifiers of a frame, normalized.

    Attributes:
        row_reason: Quarantine reason per row, None for rows that may be sent.
        row_detail: Detail of the reason per row ("" where none).
        uses: The long identifier table of the rows that may be sent.
        dropped: Rejected values: ``row``, ``column_name``, ``value_masked``, ``reason``,
            ``detail``.
        code_values: The value of each identifier code (``uses['code']`` indexes it).
        code_kinds: Identifier kinds in code order; codes of ``code_kinds[i]`` start at
            ``kind_starts[i]``.
        kind_starts: First code of each kind.
    """

    row_reason: np.ndarray
    row_detail: np.ndarray
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


def _text_identifier(raw: pd.Series, limit: int) -> tuple[pd.Series, np.ndarray]:
    """Exact text of a non-contact identifier and why each refused value was refused."""
    read = read_text(raw)
    text = read.values
    why = read.unreadable.copy()
    long = (text.str.len() > limit).fillna(False).to_numpy(dtype=bool)
    why[long] = f"longer than {limit} characters"
    control = text.str.contains(_CONTROL, regex=True).fillna(False).to_numpy(dtype=bool)
    why[control] = "holds control or replacement (U+FFFD) characters"
    bad = pd.notna(why)
    return text.mask(bad, pd.NA), why


def _detail(column: str, norm: Normalized, rows: np.ndarray) -> list[str]:
    """``<column>: <REASON>: <why>`` per refused value of ``rows``."""
    reason = norm.reason if norm.reason is not None else np.full(len(norm.invalid), "INVALID")
    specific = norm.detail if norm.detail is not None else np.full(len(norm.invalid), None)
    return [
        f"{column}: {r}: {d if isinstance(d, str) else DROPPED_DETAILS.get(r, 'refused')}"
        for r, d in zip(reason[rows].tolist(), specific[rows].tolist(), strict=True)
    ]


def normalize_frame(frame: pd.DataFrame, audience: AudienceConfig) -> NormalizedFrame:
    """Normalize identifyBy, externalId, emails and phones of ``frame`` (positional index).

    Args:
        frame: Source rows with a default RangeIndex.
        audience: The audience definition.

    Returns:
        The normalized identifiers, per-row quarantine reasons and details, dropped values.
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
    idb_column = identity.identify_by.column
    if idb_kind in ("EMAIL", "PHONE"):
        idb = column(idb_kind, idb_column)
    else:
        text, why = _text_identifier(frame[idb_column], MAX_OTHER_IDENTIFIER_LENGTH)
        invalid = pd.Series(pd.notna(why), index=frame.index)
        refused = np.full(n, None, dtype=object)
        refused[invalid.to_numpy()] = "INVALID"
        idb = Normalized(text, invalid, refused, why)
    idb_missing = ~(idb.values.notna() | idb.invalid).to_numpy(dtype=bool)

    reason = np.full(n, None, dtype=object)
    detail = np.full(n, "", dtype=object)
    ext_detail = np.full(n, "", dtype=object)
    if identity.external_id:
        ext, ext_why = _text_identifier(frame[identity.external_id], MAX_EXTERNAL_ID_LENGTH)
        ext_refused = pd.notna(ext_why)
        bad = np.flatnonzero(ext_refused)
        reason[bad] = QuarantineReason.INVALID_EXTERNAL_ID.value
        ext_detail[bad] = [f"{identity.external_id}: {w}" for w in ext_why[bad].tolist()]
        detail[bad] = ext_detail[bad]
    else:
        ext = pd.Series(pd.NA, index=frame.index, dtype=idb.values.dtype)
        ext_refused = np.zeros(n, dtype=bool)
    bad = np.flatnonzero(idb.invalid.to_numpy(dtype=bool))
    reason[bad] = QuarantineReason.INVALID_IDENTIFY_BY.value
    detail[bad] = _detail(idb_column, idb, bad)
    reason[idb_missing] = QuarantineReason.MISSING_IDENTIFY_BY.value
    detail[idb_missing] = f"identifyBy column {idb_column!r} is empty"
    alive = pd.isna(reason)

    positions = np.arange(n, dtype=np.int64)
    # One part per identifier column, identifyBy first so that a value listed both as the
    # identifyBy and as a contact keeps the identifyBy flag when deduplicated below.
    parts: list[tuple[str, str, pa.Array, np.ndarray, bool]] = []
    dropped: list[pd.DataFrame] = []
    usable = idb.values.notna().to_numpy() | ext.notna().to_numpy()
    given = usable | ext_refused

    def add(kind: str, name: str, values: pd.Series, is_idb: bool) -> None:
        keep = alive & values.notna().to_numpy()
        rows = positions[keep]
        # The whole column (nulls included) is encoded; ``rows`` picks the codes that count.
        parts.append((kind, name, to_arrow(values), rows, is_idb))

    add(idb_kind, idb_column, idb.values, True)
    if identity.external_id:
        add(EXTERNAL_ID, identity.external_id, ext, False)
    for kind, names in (("EMAIL", identity.emails), ("PHONE", identity.phones)):
        for name in names:
            normalized = column(kind, name)
            usable |= normalized.values.notna().to_numpy()
            given |= normalized.invalid.to_numpy(dtype=bool)
            if (kind, name) == (idb_kind, idb_column):
                continue  # its uses are there already; its refusal is the row's reason
            add(kind, name, normalized.values, False)
            bad = np.flatnonzero(normalized.invalid.to_numpy(dtype=bool))
            if len(bad):
                dropped.append(_dropped(frame[name], name, normalized, bad))
    # No identifyBy, and every other identifier given was refused: "missing" would hide that
    # values were there (each one is in ``dropped``). A refused identifyBy keeps its reason.
    nothing = idb_missing & given & ~usable
    reason[nothing] = QuarantineReason.NO_USABLE_IDENTIFIER.value
    detail[nothing] = "no identifyBy, and every identifier given was refused (see dropped values)"
    # A refused externalId behind another reason still shows in the detail.
    hidden = np.flatnonzero(ext_refused & (reason != QuarantineReason.INVALID_EXTERNAL_ID.value))
    detail[hidden] = [
        f"{d}; also {e}" for d, e in zip(detail[hidden], ext_detail[hidden], strict=True)
    ]
    uses, code_values, kind_starts = _uses_table(parts, n)
    dropped_frame = (
        pd.concat(dropped, ignore_index=True)
        if dropped
        else pd.DataFrame({c: pd.Series([], dtype=object) for c in DROPPED_COLUMNS})
    )
    kinds = list(dict.fromkeys(kind for kind, *_ in parts))
    return NormalizedFrame(reason, detail, uses, dropped_frame, code_values, kinds, kind_starts)


def _dropped(raw: pd.Series, name: str, norm: Normalized, rows: np.ndarray) -> pd.DataFrame:
    """Dropped-value records of ``rows`` of one column, the raw value masked."""
    assert norm.reason is not None  # emails and phones always give reasons
    shown = shown_text(raw.iloc[rows]).tolist()
    reasons = norm.reason[rows].tolist()
    specific = norm.detail[rows].tolist() if norm.detail is not None else [None] * len(rows)
    return pd.DataFrame(
        {
            "row": rows,
            "column_name": name,
            "value_masked": [mask_identifier(v) for v in shown],
            "reason": reasons,
            "detail": [
                d if isinstance(d, str) else DROPPED_DETAILS[r]
                for r, d in zip(reasons, specific, strict=True)
            ],
        }
    )


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
    if n_rows == 0:
        # Arrow drops empty chunks, so an empty source has no chunk per part: nothing to code.
        empty = pd.DataFrame(
            {
                "row": np.empty(0, dtype=np.int64),
                "kind": pd.Categorical([], categories=kinds),
                "column": pd.Categorical([], categories=columns),
                "is_idb": np.empty(0, dtype=bool),
                "code": np.empty(0, dtype=np.int64),
            }
        )
        return empty, pa.array([], type=pa.large_string()), np.zeros(len(kinds), dtype=np.int64)
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
