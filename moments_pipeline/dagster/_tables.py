"""Audience tables in the warehouse: declared JSON list columns, any text stored as text.

``write_table``/``read_table`` store the prepare step's frames on DuckDB and PostgreSQL alike.
Which columns hold JSON lists is declared per table (``*_JSON_COLUMNS``), never guessed from the
values, so a text value starting with ``[`` stays text. PostgreSQL TEXT cannot hold NUL: stored
text carries U+FFFD in its place, on every backend, so the tables agree (identifiers never hold
NUL: preparation refuses them; row ids have it replaced the same way).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import numpy as np
import orjson
import pandas as pd

from moments_pipeline.warehouse import Warehouse

__all__ = [
    "DROPPED_VALUES_JSON_COLUMNS",
    "PARTICIPANTS_JSON_COLUMNS",
    "QUARANTINE_JSON_COLUMNS",
    "is_listlike",
    "printable",
    "read_table",
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
    warehouse.write_frame(table, out, mode="replace")


def read_table(
    warehouse: Warehouse,
    table: str,
    *,
    json_columns: Sequence[str],
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read a table written by ``write_table``, decoding the declared JSON columns to lists."""
    frame = warehouse.read_table(table, columns)
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
