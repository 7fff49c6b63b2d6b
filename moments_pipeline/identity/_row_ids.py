"""Row ids: the key that leads every participant, quarantine and dropped record to its source row.

A NULL or duplicated row id no longer fails the audience; only those rows are quarantined:

- missing (NULL, blank, or a number ``_text`` cannot read exactly): ``ROW_ID_MISSING``, under
  the row id ``#<position>`` (0-based position of the row in the source snapshot): unique and
  traceable;
- shared by several rows: ``ROW_ID_DUPLICATE`` for every one of them (none can be told apart).
  The first keeps the shared id (the quarantine record joins on it); each later one is
  recorded as ``<id>#<position>``, so every quarantine row id stays unique.

A suffixed or position id that a real row id already spells gets more ``#`` until it is free.

NUL cannot be stored in PostgreSQL TEXT: a row id holding it is kept with NUL replaced by
U+FFFD (the duplicate check runs after that, so two ids that become equal are both refused).
Without a row id column the ids are the positions (``0``, ``1``, ...).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from moments_pipeline.config import AudienceConfig
from moments_pipeline.identity._reasons import QuarantineReason
from moments_pipeline.identity._text import STRING_DTYPE, read_text, shown_text


class RowIds(NamedTuple):
    """Row id per row and the quarantine reason/detail of rows whose id is unusable."""

    ids: pd.Series
    reason: np.ndarray
    detail: np.ndarray


def row_ids(frame: pd.DataFrame, audience: AudienceConfig) -> RowIds:
    """The row id of every row of ``frame`` (positional index), see the module docstring."""
    n = len(frame)
    reason = np.full(n, None, dtype=object)
    detail = np.full(n, "", dtype=object)
    column = audience.source.row_id_column
    if column is None:
        return RowIds(pd.Series(np.arange(n).astype(str), dtype=STRING_DTYPE), reason, detail)
    read = read_text(frame[column])
    ids = read.values
    if ids.str.contains("\x00", regex=False).fillna(False).any():
        ids = ids.str.replace("\x00", "\ufffd", regex=False)
    missing = ids.isna().to_numpy()
    # Distinct integers are distinct decimal texts: hash the integers, not the strings.
    raw = frame[column]
    if raw.dtype.kind in "iu" and not missing.any():
        duplicated = raw.duplicated(keep=False).to_numpy()
    else:
        duplicated = ids.duplicated(keep=False).to_numpy() & ~missing
    if not (duplicated.any() or missing.any()):
        return RowIds(ids.reset_index(drop=True), reason, detail)
    taken = set(ids[~missing].tolist())
    ids = ids.copy()
    if duplicated.any():
        sizes = ids[duplicated].map(ids[duplicated].value_counts())
        reason[duplicated] = QuarantineReason.ROW_ID_DUPLICATE.value
        later = np.flatnonzero(duplicated & ids.duplicated(keep="first").to_numpy())
        names = _free_names([f"{i}#" for i in ids.iloc[later].tolist()], later.tolist(), taken)
        detail[duplicated] = [
            f"row id column {column!r}: {k} rows share this id" for k in sizes.tolist()
        ]
        detail[later] = [
            f"{d}; recorded as {name}" for d, name in zip(detail[later], names, strict=True)
        ]
        ids.iloc[later] = names
    if missing.any():
        positions = np.flatnonzero(missing)
        names = _free_names(["#"] * len(positions), positions.tolist(), taken)
        ids.iloc[positions] = names
        shown = shown_text(raw.iloc[positions]).tolist()
        why = read.unreadable[positions].tolist()
        reason[positions] = QuarantineReason.ROW_ID_MISSING.value
        detail[positions] = [
            f"row id column {column!r} is empty; recorded as {name} (position in the source)"
            if w is None
            else f"row id column {column!r} unreadable ({s}: {w}); recorded as {name}"
            for name, s, w in zip(names, shown, why, strict=True)
        ]
    return RowIds(ids.reset_index(drop=True), reason, detail)


def _free_names(prefixes: list[str], positions: list[int], taken: set[str]) -> list[str]:
    """``<prefix><position>`` per row, with more ``#`` where a real row id has that text."""
    names = []
    for prefix, position in zip(prefixes, positions, strict=True):
        name = f"{prefix}{position}"
        while name in taken:
            prefix += "#"
            name = f"{prefix}{position}"
        taken.add(name)
        names.append(name)
    return names
