"""Turning raw warehouse columns into clean pandas string Series.

Warehouses hand back numbers for phone columns, NULLs, NaN, bytes and padded text; these helpers
give one representation (pandas ``str`` dtype, missing as NA) before any normalization.
"""

from __future__ import annotations

import pandas as pd

STRING_DTYPE = pd.StringDtype(storage="pyarrow", na_value=pd.NA)


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
    elif raw.dtype.kind in "iub" or isinstance(raw.dtype, pd.StringDtype):
        text = raw.astype(STRING_DTYPE)
    else:
        values = raw.astype(object)
        values = values.where(values.notna(), None)
        text = pd.Series(
            [
                v
                if isinstance(v, str) or v is None
                else v.decode("utf-8", "replace")
                if isinstance(v, bytes)
                else str(v)
                for v in values.tolist()
            ],
            index=raw.index,
            dtype=STRING_DTYPE,
        )
    text = text.str.strip()
    return text.mask(text == "", pd.NA)
