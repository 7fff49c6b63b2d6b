"""Turning raw warehouse columns into clean pandas string Series, exactly.

Warehouses hand back numbers for phone and id columns, NULLs, NaN, Decimals, bytes and padded
text; these helpers give one representation (pandas ``str`` dtype backed by Arrow, missing as
NA) before any normalization, plus cheap conversions between those Series and Arrow arrays.

Numbers become the text the warehouse stores, never something a float rounded into:

- integer columns (numpy or nullable ``Int64``): their digits;
- ``decimal.Decimal`` (DuckDB DECIMAL, PostgreSQL NUMERIC): exact digits, no exponent
  (``Decimal('1E+20')`` -> ``100000000000000000000``, ``-0`` -> ``0``); a non-integral value keeps
  its exact text (``1.50``); NaN/Infinity are unreadable;
- floats: only whole values with ``abs(v) < 2**53`` (``-0.0`` -> ``0``). From 2**53 on, two
  different stored integers can be one float (``2**53`` and ``2**53 + 1`` are), so such a value
  is unreadable rather than folded into another; inf and fractions are unreadable too. NaN in
  a float column is how pandas carries SQL NULL, so it is missing, not unreadable.

An unreadable value is NA in the text and explained in ``ReadText.unreadable``: the caller
quarantines the row or records the dropped value; nothing is guessed.
"""

from __future__ import annotations

import decimal
import math
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

STRING_DTYPE = pd.StringDtype(storage="pyarrow", na_value=pd.NA)

#: Floats from this magnitude on no longer identify one integer (2**53 + 1 -> 2**53).
FLOAT_EXACT_LIMIT = 2**53
_FLOAT_TOO_BIG = "a float at or beyond 2**53 cannot tell neighbouring integers apart"
_NOT_FINITE = "not a finite number"
_NOT_WHOLE = "a float that is not a whole number"


class ReadText(NamedTuple):
    """A column read as text.

    Attributes:
        values: Trimmed text, NA where missing, blank or unreadable.
        unreadable: Why each unreadable value could not be read exactly (None elsewhere).
        shown: Text for display of unreadable values (``repr`` of the number), None elsewhere.
    """

    values: pd.Series
    unreadable: np.ndarray
    shown: np.ndarray


def to_arrow(values: pd.Series | pd.Index | pd.api.extensions.ExtensionArray) -> pa.Array:
    """Strings as one ``large_string`` Arrow array (nulls where missing).

    Arrow-backed input is not copied value by value.
    """
    array = values.array if isinstance(values, pd.Series | pd.Index) else values
    if isinstance(array, pd.arrays.ArrowStringArray):
        chunked = array._pa_array  # the public __arrow_array__ gives the same buffers
        return chunked.combine_chunks().cast(pa.large_string())
    return pa.array(pd.Series(array, dtype=STRING_DTYPE).array._pa_array.combine_chunks())


def from_arrow(array: pa.Array | pa.ChunkedArray, index: pd.Index | None = None) -> pd.Series:
    """An Arrow string array as a ``STRING_DTYPE`` Series."""
    return pd.Series(pd.arrays.ArrowStringArray(array.cast(pa.large_string())), index=index)


def _float_text(value: float) -> tuple[str | None, str | None]:
    """(text, why unreadable) of one float; (None, None) for NaN (missing)."""
    if math.isnan(value):
        return None, None
    if math.isinf(value):
        return None, _NOT_FINITE
    if not value.is_integer():
        return None, _NOT_WHOLE
    if abs(value) >= FLOAT_EXACT_LIMIT:
        return None, _FLOAT_TOO_BIG
    return str(int(value)), None


def _decimal_text(value: decimal.Decimal) -> tuple[str | None, str | None]:
    if not value.is_finite():
        return None, _NOT_FINITE
    if value == value.to_integral_value():
        # Exact digits without exponent; ``-0`` is zero.
        return format(value.quantize(decimal.Decimal(1)) + 0, "f"), None
    return format(value, "f"), None


def _one(value: object) -> tuple[str | None, str | None]:
    if value is None or value is pd.NA or value is pd.NaT:
        return None, None
    if isinstance(value, str):
        return value, None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace"), None
    if isinstance(value, bool | np.bool_):
        return str(bool(value)), None
    if isinstance(value, int | np.integer):
        return str(int(value)), None
    if isinstance(value, float | np.floating):
        return _float_text(float(value))
    if isinstance(value, decimal.Decimal):
        return _decimal_text(value)
    return str(value), None


def _float_column(raw: pd.Series) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    values = raw.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(values)
    whole = finite & (np.floor(values) == values)
    exact = whole & (np.abs(values) < FLOAT_EXACT_LIMIT)
    ints = np.where(exact, values, 0).astype(np.int64)  # -0.0 -> 0
    text = pa.array(ints).cast(pa.large_string())
    text = pc.if_else(pa.array(exact), text, pa.scalar(None, pa.large_string()))
    unreadable = np.full(len(values), None, dtype=object)
    shown = np.full(len(values), None, dtype=object)
    bad = ~np.isnan(values) & ~exact
    if bad.any():
        unreadable[bad & ~finite] = _NOT_FINITE
        unreadable[bad & finite & ~whole] = _NOT_WHOLE
        unreadable[bad & whole] = _FLOAT_TOO_BIG
        shown[bad] = [repr(float(v)) for v in values[bad]]
    return text, unreadable, shown


def _object_column(raw: pd.Series) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    values = raw.to_numpy(dtype=object)
    none = np.full(len(values), None, dtype=object)
    try:
        # Plain str/None/NaN columns (the common case) convert in C.
        array = pa.array(values, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        array = None
    if array is not None:
        # ``Decimal('NaN')`` (a stored PostgreSQL NUMERIC NaN) converts as null: it is a
        # value, not a NULL. Only the null positions need a look.
        nulls = np.flatnonzero(np.asarray(array.is_null().to_numpy(zero_copy_only=False)))
        if not any(isinstance(values[i], decimal.Decimal) for i in nulls.tolist()):
            return array, none, none
    pairs = [_one(v) for v in values.tolist()]
    unreadable = np.array([why for _, why in pairs], dtype=object)
    shown = np.full(len(values), None, dtype=object)
    bad = np.flatnonzero(pd.notna(unreadable))
    shown[bad] = [str(values[i]) for i in bad]
    return pa.array([t for t, _ in pairs], type=pa.large_string()), unreadable, shown


def read_text(raw: pd.Series) -> ReadText:
    """Read ``raw`` exactly as text (see the module docstring for the number rules).

    Trimmed with Python's ``str.strip()`` whitespace; empty and whitespace-only are NA.
    """
    none = np.full(len(raw), None, dtype=object)
    unreadable, shown = none, none
    if pd.api.types.is_float_dtype(raw.dtype):
        array, unreadable, shown = _float_column(raw)
    elif raw.dtype.kind in "iu":
        array = pa.Array.from_pandas(raw).cast(pa.large_string())  # nullable Int64 too
    elif raw.dtype.kind == "b" or isinstance(raw.dtype, pd.StringDtype):
        array = to_arrow(raw.astype(STRING_DTYPE))
    else:
        array, unreadable, shown = _object_column(raw)
    # Python's str.strip() whitespace (Unicode White_Space), as the previous pandas path did.
    trimmed = pc.utf8_trim_whitespace(array)
    blank = pc.equal(trimmed, "")
    text = from_arrow(pc.if_else(blank, pa.scalar(None, pa.large_string()), trimmed), raw.index)
    return ReadText(text, unreadable, shown)


def as_text(raw: pd.Series) -> pd.Series:
    """``read_text(raw).values``: trimmed exact text, NA where missing or unreadable."""
    return read_text(raw).values


def shown_text(raw: pd.Series) -> pd.Series:
    """Text for display (quarantine raw columns): unreadable numbers as written, not NA."""
    read = read_text(raw)
    if not pd.notna(read.shown).any():
        return read.values
    shown = pd.Series(read.shown, index=raw.index, dtype=STRING_DTYPE)
    return read.values.fillna(shown)
