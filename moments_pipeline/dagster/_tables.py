"""Audience tables in the warehouse: declared JSON list columns, any text stored as text.

``write_table``/``read_table`` store the prepare step's frames on DuckDB and PostgreSQL alike;
``with_bodies``, ``sync_participants`` and ``quarantine_rows`` convert between the stored
participants/quarantine tables and the engine's input records (the sync step sends exactly the
FlowParticipant JSON the prepare step stored).
Which columns hold JSON lists is declared per table (``*_JSON_COLUMNS``), never guessed from the
values, so a text value starting with ``[`` stays text. PostgreSQL TEXT cannot hold NUL: stored
text carries U+FFFD in its place, on every backend, so the tables agree (identifiers never hold
NUL: preparation refuses them; row ids have it replaced the same way).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson
import pandas as pd

from moments_pipeline.identity import PreparedAudience
from moments_pipeline.sync import QuarantineRow, SyncParticipant
from moments_pipeline.warehouse import Warehouse

__all__ = [
    "BODY_COLUMN",
    "DROPPED_VALUES_JSON_COLUMNS",
    "PARTICIPANTS_JSON_COLUMNS",
    "QUARANTINE_JSON_COLUMNS",
    "decode_json_columns",
    "is_listlike",
    "printable",
    "quarantine_rows",
    "read_table",
    "storable_frame",
    "sync_participants",
    "with_bodies",
    "write_table",
]

#: List columns stored as JSON text, declared per table: nothing is guessed from the values,
#: so a text value starting with ``[`` stays text.
PARTICIPANTS_JSON_COLUMNS: tuple[str, ...] = ("emails", "phones", "source_rows")
QUARANTINE_JSON_COLUMNS: tuple[str, ...] = ()
DROPPED_VALUES_JSON_COLUMNS: tuple[str, ...] = ()

_NUL, _REPLACEMENT = "\x00", "\ufffd"


def _storable_text(values: pd.Series) -> pd.Series:
    """Text cells with NUL replaced (other values untouched)."""
    if not (values.dtype == object or isinstance(values.dtype, pd.StringDtype)):
        return values
    cells = values.tolist()
    if not any(isinstance(v, str) and _NUL in v for v in cells):
        return values
    return pd.Series(
        [v.replace(_NUL, _REPLACEMENT) if isinstance(v, str) else v for v in cells],
        index=values.index,
        dtype=object,
    )


def write_table(
    warehouse: Warehouse, table: str, frame: pd.DataFrame, *, json_columns: Sequence[str]
) -> None:
    """Replace ``table`` with ``frame``; ``json_columns`` are stored as JSON text.

    JSON text keeps the tables readable by any SQL client and identical across DuckDB and
    PostgreSQL; ``read_table`` with the same ``json_columns`` turns it back into lists. Every
    other text cell is stored as text (NUL replaced by U+FFFD).
    """
    warehouse.write_frame(table, storable_frame(frame, json_columns), mode="replace")


def storable_frame(frame: pd.DataFrame, json_columns: Sequence[str]) -> pd.DataFrame:
    """``frame`` as ``write_table`` stores it (JSON list columns, NUL-free text)."""
    out = frame.copy()
    for column in out.columns:
        if column in json_columns:
            out[column] = (
                out[column]
                .map(lambda v: json.dumps(list(v), default=str) if is_listlike(v) else None)
                .astype(object)
            )
        else:
            out[column] = _storable_text(out[column])
    return out


def read_table(
    warehouse: Warehouse,
    table: str,
    *,
    json_columns: Sequence[str],
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read a table written by ``write_table``, decoding the declared JSON columns to lists."""
    return decode_json_columns(warehouse.read_table(table, columns), json_columns)


def decode_json_columns(frame: pd.DataFrame, json_columns: Sequence[str]) -> pd.DataFrame:
    """The declared JSON text columns of a stored frame decoded to lists (in place)."""
    for column in json_columns:
        if column in frame.columns:
            frame[column] = [
                orjson.loads(v) if isinstance(v, str) else [] for v in frame[column].tolist()
            ]
    return frame


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def is_listlike(value: object) -> bool:
    """A list cell (list, tuple or array)."""
    return isinstance(value, (list, tuple, np.ndarray))


def printable(value: object) -> str:
    """``value`` as text with control characters (but tab/newline) shown as U+FFFD."""
    return _CONTROL.sub(_REPLACEMENT, str(value))


#: Column of the participants table holding the exact FlowParticipant JSON that is sent.
BODY_COLUMN = "flow_participant"


def with_bodies(prepared: PreparedAudience, bodies: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The participants table as stored: identity columns plus the FlowParticipant JSON.

    Attribute and variable columns (``attr:firstName``...) are not SQL identifiers; they live
    inside the body, which is also exactly what the sync step sends.
    """
    frame = prepared.participants
    plain = [c for c in frame.columns if ":" not in str(c)]
    out = frame[plain].copy()
    out[BODY_COLUMN] = [orjson.dumps(b).decode() for b in bodies]
    return out


def sync_participants(participants: pd.DataFrame) -> list[SyncParticipant]:
    """The engine's input, read back from the stored participants table.

    ``profile_anchor`` (the Infobip profile the identity layer resolved each person to) rides
    along, so the identity ledger records the person's identifiers under that profile.
    """
    keys = participants["person_key"].astype(str).tolist()
    if "profile_anchor" in participants.columns:
        anchors = [None if pd.isna(a) else str(a) for a in participants["profile_anchor"]]
    else:
        anchors = [None] * len(keys)
    # The input rows behind each person: a person refused at send time is quarantined under
    # these row ids, like the rows preparation quarantined.
    if "source_rows" in participants.columns:
        rows = [tuple(str(r) for r in v) for v in participants["source_rows"]]
    else:
        rows = [()] * len(keys)
    return [
        SyncParticipant(person_key=k, body=orjson.loads(b), profile_anchor=a, source_rows=r)
        for k, b, a, r in zip(keys, participants[BODY_COLUMN], anchors, rows, strict=True)
    ]


def quarantine_rows(audience: str, partition: str, frame: pd.DataFrame) -> list[QuarantineRow]:
    """The stored quarantine table as the engine's ``QuarantineRow`` records."""
    return [
        QuarantineRow(
            audience=audience,
            partition_key=partition,
            row_id=str(row_id),
            reason=str(reason),
            detail=None if detail is None or pd.isna(detail) else str(detail),
        )
        for row_id, reason, detail in zip(
            frame["row_id"], frame["reason"], frame.get("detail", [None] * len(frame)), strict=True
        )
    ]
