"""Phone normalization to international digits without ``+`` (E.164 minus the plus).

Each DISTINCT (raw value, region) pair is decided once: first by the vectorized accept-only
fast path (``_phone_fast``), then by ``phonenumbers`` for whatever it did not accept. The region
comes from the row's region column, else the audience default. Valid means
``phonenumbers.is_valid_number``. Output: digits such as ``41793026727``, NA when invalid.
"""

from __future__ import annotations

import pandas as pd
import phonenumbers

from moments_pipeline.identity._emails import Normalized
from moments_pipeline.identity._phone_fast import fast_phones
from moments_pipeline.identity._text import STRING_DTYPE, as_text

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


def _regions(index: pd.Index, regions: pd.Series | None, default_region: str | None) -> pd.Series:
    result = pd.Series(default_region, index=index, dtype=STRING_DTYPE)
    if regions is not None:
        row_regions = as_text(regions).str.upper()
        result = row_regions.where(row_regions.notna(), result)
    return result


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
    present = text.notna()
    region = _regions(text.index, regions, default_region)
    values = pd.Series(pd.NA, index=text.index, dtype=STRING_DTYPE)
    if present.any():
        pairs = pd.DataFrame({"v": text[present], "r": region[present]})
        codes, uniques = pd.MultiIndex.from_frame(pairs).factorize()
        raw_values = [v for v, _ in uniques]
        raw_regions = [r if isinstance(r, str) else None for _, r in uniques]
        short = [len(v) <= MAX_PHONE_LENGTH for v in raw_values]
        fast = fast_phones(
            [v if ok else "" for v, ok in zip(raw_values, short, strict=True)], raw_regions
        )
        # Whatever the fast path does not accept is decided by the library itself.
        parsed = [
            f if f is not None else library_phone(v, r) if ok else None
            for f, v, r, ok in zip(fast, raw_values, raw_regions, short, strict=True)
        ]
        values[present] = pd.array(parsed, dtype=STRING_DTYPE)[codes]
    return Normalized(values, present & values.isna())
