"""Phone normalization to international digits without ``+`` (E.164 minus the plus).

Each DISTINCT (raw value, region) pair is decided once: first by the vectorized replay of the
library (``_phone_fast``), then by ``phonenumbers`` for whatever the replay leaves undecided.
The region comes from the row's region column, else the audience default. Valid means
``phonenumbers.is_valid_number``. Output: digits such as ``41793026727``, NA when invalid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from moments_pipeline.identity._emails import Normalized
from moments_pipeline.identity._phone_fast import decide_phones
from moments_pipeline.identity._text import as_text, from_arrow, to_arrow

MAX_PHONE_LENGTH = 50


def library_phone(value: str, region: str | None) -> str | None:
    """Normalize one raw phone with ``phonenumbers`` (the reference the fast path must match).

    Args:
        value: Raw phone text.
        region: ISO alpha-2 region for numbers written without a country code.

    Returns:
        International digits without ``+``, or None when invalid.
    """
    if len(value) > MAX_PHONE_LENGTH:
        return None
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return f"{number.country_code}{phonenumbers.national_significant_number(number)}"


def _region_codes(
    n: int, regions: pd.Series | None, default_region: str | None
) -> tuple[np.ndarray, list[str]]:
    """Region index per row (-1: none) and the distinct upper-case region names."""
    names: list[str] = []
    codes = np.full(n, -1, dtype=np.int64)
    if regions is not None:
        row_codes, uniques = pd.factorize(as_text(regions).str.upper())
        names = [str(u) for u in uniques]
        codes = row_codes.astype(np.int64)
    if default_region:
        default = default_region.upper()
        if default not in names:
            names.append(default)
        codes[codes < 0] = names.index(default)
    return codes, names


def normalize_phones(
    raw: pd.Series, *, regions: pd.Series | None = None, default_region: str | None = None
) -> Normalized:
    """Normalize a column of phone numbers.

    Args:
        raw: Raw values (text or numbers; NULL, empty and whitespace-only mean missing).
        regions: Per-row ISO alpha-2 region (NA rows fall back to ``default_region``).
        default_region: Region for rows without one.

    Returns:
        International digits without ``+`` and the mask of rejected non-empty values.
    """
    text = as_text(raw)
    present = text.notna().to_numpy()
    region_code, region_names = _region_codes(len(text), regions, default_region)
    # Row -> distinct (value, region) pair; -1 (null on take) for missing values.
    pair_of_row = np.full(len(text), -1, dtype=np.int64)
    pair_digits = pa.array([], type=pa.large_string())
    rows = np.flatnonzero(present)
    if len(rows):
        # Distinct pairs through integer codes, not tuples of strings.
        value_code, distinct_values = pd.factorize(text)  # NA: -1, dropped by ``rows``
        width = len(region_names) + 1
        pair_code, pairs = pd.factorize(
            value_code[rows].astype(np.int64) * width + region_code[rows] + 1
        )
        pair_of_row[rows] = pair_code
        values = to_arrow(distinct_values).take(pa.array(pairs // width))
        pair_region = pairs % width - 1
        lengths = np.asarray(pc.utf8_length(values).to_numpy(zero_copy_only=False))
        candidates = np.flatnonzero(lengths <= MAX_PHONE_LENGTH)
        fast, fast_decided = decide_phones(
            values.take(pa.array(candidates)), pair_region[candidates], region_names
        )
        # Longer values are refused; the replay's undecided ones go to the library itself.
        rest = candidates[~fast_decided]
        rest_values = values.take(pa.array(rest)).to_pylist()
        rest_regions = [region_names[r] if r >= 0 else None for r in pair_region[rest].tolist()]
        library = pa.array(
            [library_phone(v, r) for v, r in zip(rest_values, rest_regions, strict=True)],
            type=pa.large_string(),
        )
        source = np.full(len(pairs), -1, dtype=np.int64)
        source[candidates] = np.arange(len(candidates))
        source[rest] = len(candidates) + np.arange(len(rest))
        pair_digits = pa.concat_arrays([fast, library]).take(pa.array(source, mask=source < 0))
    indices = pa.array(pair_of_row, mask=pair_of_row < 0)
    normalized = from_arrow(pair_digits.take(indices), text.index)
    return Normalized(normalized, pd.Series(present, index=text.index) & normalized.isna())
