"""Phone normalization to international digits without ``+`` (E.164 minus the plus).

Each DISTINCT (raw value, region) pair is decided once: first by the vectorized replay of the
library (``_phone_fast``), then by ``phonenumbers`` for whatever the replay leaves undecided.
The region comes from the row's region column, else the audience default. Valid means
``phonenumbers.is_valid_number``. Output: digits such as ``41793026727``, NA when invalid.

Rules beyond the library (``reference_phone`` is the row-by-row statement of all of them):

- Letters are never digits: ``phonenumbers`` reads ``1-800-FLOWERS`` as a vanity number, but a
  value holding any letter is refused (``PHONE_HAS_LETTERS``) before anything parses it.
- Extensions (``ext 12``, ``ext.12``, ``x12``, ``#12``, ``;ext=12`` at the end) are refused
  (``PHONE_HAS_EXTENSION``), not stripped: the number without its extension is a switchboard,
  and two colleagues behind one switchboard would become one identifier (one profile).
- A leading ``00`` is the international prefix when the value is not valid as written for its
  region: US ``001 212 555 0143`` -> ``12125550143`` (the US prefix is ``011``, so the library
  alone refuses it), ``0049 30 901820`` with region US -> ``4930901820``. The retry only runs
  for refused values, so a valid national reading always wins.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import PhoneMetadata

from moments_pipeline.identity._emails import Normalized
from moments_pipeline.identity._phone_fast import decide_phones
from moments_pipeline.identity._reasons import DroppedValueReason
from moments_pipeline.identity._text import as_text, from_arrow, read_text, to_arrow

MAX_PHONE_LENGTH = 50
_LETTER = r"\pL"
_UNUSUAL = r"[^0-9 ().+\-]"
_EXTENSION = r"(?i)(?:;?\s*ext(?:ension)?\s*[.:=]?|x|#)\s*[0-9]{1,10}\s*$"


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


def reference_phone(value: str, region: str | None) -> str | None:
    """Row-by-row statement of the whole phone rule (letters, extensions, ``00``, library).

    ``normalize_phones`` must give the same answer for every value; tests compare the two.
    """
    if len(value) > MAX_PHONE_LENGTH or re.search(_EXTENSION, value):
        return None
    if re.search(r"[^\W\d_]", value):  # a letter (RE2's \pL in the vectorized path)
        return None
    got = library_phone(value, region)
    digits = re.sub(r"[^0-9]", "", value)
    if got is None and not value.startswith("+") and digits.startswith("00"):
        got = library_phone("+" + digits[2:], region)
    return got


def _decide(values: pa.Array, regions: np.ndarray, names: list[str]) -> pa.Array:
    """Digits per value (null when refused): the vectorized replay, then the library."""
    fast, decided = decide_phones(values, regions, names)
    rest = np.flatnonzero(~decided)
    if len(rest) == 0:
        return fast
    rest_values = values.take(pa.array(rest)).to_pylist()
    rest_regions = [names[r] if r >= 0 else None for r in regions[rest].tolist()]
    library = pa.array(
        [library_phone(v, r) for v, r in zip(rest_values, rest_regions, strict=True)],
        type=pa.large_string(),
    )
    source = np.arange(len(values), dtype=np.int64)
    source[rest] = len(values) + np.arange(len(rest))
    return pa.concat_arrays([fast.cast(pa.large_string()), library]).take(pa.array(source))


def _bools(array: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


def _idd_is_00(names: list[str]) -> np.ndarray:
    """Per region index (and -1: none, last): the region's own international prefix is 00."""
    metadata = [PhoneMetadata.metadata_for_region(r, None) for r in names]
    return np.array([m is not None and m.international_prefix == "00" for m in metadata] + [False])


def _decide_pairs(
    values: pa.Array, pair_region: np.ndarray, names: list[str]
) -> tuple[pa.Array, np.ndarray]:
    """Digits (null when refused) and the ``DroppedValueReason`` of each refused pair."""
    n = len(values)
    reason = np.full(n, None, dtype=object)
    lengths = np.asarray(pc.utf8_length(values).to_numpy(zero_copy_only=False))
    # Letters and extension markers live only in values holding more than digits, spaces,
    # ( ) . - +: the two patterns run on those few.
    odd = np.flatnonzero(_bools(pc.match_substring_regex(values, pattern=_UNUSUAL)))
    if len(odd):
        sub = values.take(pa.array(odd))
        extension = _bools(pc.match_substring_regex(sub, pattern=_EXTENSION))
        without_ext = pc.replace_substring_regex(sub, pattern=_EXTENSION, replacement="")
        letters = _bools(pc.match_substring_regex(without_ext, pattern=_LETTER))
        reason[odd[extension]] = DroppedValueReason.PHONE_HAS_EXTENSION.value
        reason[odd[letters]] = DroppedValueReason.PHONE_HAS_LETTERS.value
    reason[lengths > MAX_PHONE_LENGTH] = DroppedValueReason.VALUE_TOO_LONG.value
    candidates = np.flatnonzero(pd.isna(reason))
    written = values.take(pa.array(candidates))
    regions = pair_region[candidates]
    digits = _decide(written, regions, names)
    # A second reading with "00" as the international prefix, only where the value as written
    # is refused and its first two digits are 0 (a small share: the copies stay small). Where
    # the region's own prefix is 00 the library reads it so already.
    second = np.flatnonzero(
        _bools(pc.is_null(digits))
        & _bools(pc.match_substring_regex(written, pattern=r"^[^0-9]*0[^0-9]*0"))
        & ~_bools(pc.starts_with(written, "+"))
        & ~_idd_is_00(names)[regions]
    )
    if len(second):
        bare = pc.replace_substring_regex(
            written.take(pa.array(second)), pattern=r"[^0-9]", replacement=""
        )
        again = pc.binary_join_element_wise(
            pa.scalar("+", pa.large_string()),
            pc.utf8_slice_codeunits(bare, 2),
            pa.scalar("", pa.large_string()),
        )
        retried = _decide(again.cast(pa.large_string()), regions[second], names)
        pick = np.arange(len(candidates), dtype=np.int64)
        found = _bools(pc.is_valid(retried))
        pick[second[found]] = len(candidates) + np.flatnonzero(found)
        digits = pa.concat_arrays(
            [digits.cast(pa.large_string()), retried.cast(pa.large_string())]
        ).take(pa.array(pick))
    source = np.full(n, -1, dtype=np.int64)
    source[candidates] = np.arange(len(candidates))
    out = digits.cast(pa.large_string()).take(pa.array(source, mask=source < 0))
    reason[candidates[_bools(pc.is_null(digits))]] = DroppedValueReason.INVALID_PHONE.value
    return out, reason


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
    read = read_text(raw)
    text = read.values
    unreadable = pd.notna(read.unreadable)
    present = text.notna().to_numpy()
    region_code, region_names = _region_codes(len(text), regions, default_region)
    # Row -> distinct (value, region) pair; -1 (null on take) for missing values.
    pair_of_row = np.full(len(text), -1, dtype=np.int64)
    pair_digits = pa.array([], type=pa.large_string())
    pair_reason = np.full(0, None, dtype=object)
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
        pair_digits, pair_reason = _decide_pairs(values, pairs % width - 1, region_names)
    indices = pa.array(pair_of_row, mask=pair_of_row < 0)
    normalized = from_arrow(pair_digits.take(indices), text.index)
    reason = np.full(len(text), None, dtype=object)
    reason[rows] = pair_reason[pair_of_row[rows]]
    reason[unreadable] = DroppedValueReason.UNREADABLE_VALUE.value
    invalid = pd.Series(pd.notna(reason), index=text.index)
    return Normalized(normalized, invalid, reason, read.unreadable)
