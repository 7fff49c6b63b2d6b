"""Turning raw warehouse columns into clean pandas string Series.

Warehouses hand back numbers for phone columns, NULLs, NaN, bytes and padded text; these helpers
give one representation (pandas ``str`` dtype backed by Arrow, missing as NA) before any
normalization, plus cheap conversions between those Series and plain Arrow arrays.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

STRING_DTYPE = pd.StringDtype(storage="pyarrow", na_value=pd.NA)


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


def _object_text(raw: pd.Series) -> pa.Array:
    values = raw.to_numpy(dtype=object)
    try:
        # Plain str/None/NaN columns (the common case) convert in C.
        return pa.array(values, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        pass
    cleaned = raw.astype(object)
    cleaned = cleaned.where(cleaned.notna(), None)
    return pa.array(
        [
            v
            if isinstance(v, str) or v is None
            else v.decode("utf-8", "replace")
            if isinstance(v, bytes)
            else str(v)
            for v in cleaned.tolist()
        ],
        type=pa.large_string(),
    )


def as_text(raw: pd.Series) -> pd.Series:
    """Return ``raw`` as trimmed strings, empty and whitespace-only values as NA.

    Integral floats (``41793026727.0``, as a warehouse returns a numeric column holding NULLs)
    become their integer digits.
    """
    if pd.api.types.is_float_dtype(raw.dtype):
        integral = raw.notna() & (raw == raw.round())
        text = pd.Series(pd.NA, index=raw.index, dtype=STRING_DTYPE)
        text[integral] = raw[integral].astype("int64").astype(STRING_DTYPE)
        other = raw.notna() & ~integral
        text[other] = raw[other].astype(STRING_DTYPE)
        array = to_arrow(text)
    elif raw.dtype.kind in "iu":
        array = pa.array(raw.to_numpy()).cast(pa.large_string())
    elif raw.dtype.kind == "b" or isinstance(raw.dtype, pd.StringDtype):
        array = to_arrow(raw.astype(STRING_DTYPE))
    else:
        array = _object_text(raw)
    # Python's str.strip() whitespace (Unicode White_Space), as the previous pandas path did.
    trimmed = pc.utf8_trim_whitespace(array)
    blank = pc.equal(trimmed, "")
    return from_arrow(pc.if_else(blank, pa.scalar(None, pa.large_string()), trimmed), raw.index)
