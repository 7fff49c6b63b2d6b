"""Vectorized accept-only fast path for phone numbers, built from phonenumbers' own metadata.

It replays what ``phonenumbers.parse`` + ``is_valid_number`` do for two clean shapes, in
pyarrow regex kernels over whole arrays instead of per value:

- ``+<digits>`` (spaces, dashes, dots, parentheses allowed): country code = first 1-3 digit
  prefix known to the library; only when the national part does not start with ``0`` and does
  not begin with the region's national prefix (the library would try to strip it).
- ``0<digits>`` with a region whose national prefix is exactly ``0`` and IDD exactly ``00``,
  when the full digits are not themselves a viable national number (so the library strips
  the ``0``).

Validity replays ``region_code_for_number`` (leading digits, then number type) and
``_number_type_helper`` (general description, then every number type). The fast path only ever
ACCEPTS; anything it does not accept goes to the library, so it cannot accept what the library
rejects. ``tests/identity/test_normalization.py`` checks agreement on a generated sample.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata

_CLEAN = r"^\+?[0-9 ().\-]+$"
_TYPE_DESCS = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)
_GEO_CODES = {
    cc: regions for cc, regions in COUNTRY_CODE_TO_REGION_CODE.items() if "001" not in regions
}


def _desc_mask(nsn: pa.Array, lengths: np.ndarray, desc: object) -> np.ndarray:
    """``_is_number_matching_desc`` over an array (False where the desc is absent)."""
    pattern = getattr(desc, "national_number_pattern", None)
    if desc is None or not pattern:
        return np.zeros(len(nsn), dtype=bool)
    possible = getattr(desc, "possible_length", ()) or ()
    ok = np.isin(lengths, list(possible)) if len(possible) else np.ones(len(nsn), dtype=bool)
    matched = pc.match_substring_regex(nsn, pattern=f"^(?:{pattern})$")
    return ok & matched.to_numpy(zero_copy_only=False).astype(bool)


def _type_known(nsn: pa.Array, lengths: np.ndarray, metadata: object) -> np.ndarray:
    general = _desc_mask(nsn, lengths, metadata.general_desc)  # type: ignore[attr-defined]
    known = np.zeros(len(nsn), dtype=bool)
    for name in _TYPE_DESCS:
        known |= _desc_mask(nsn, lengths, getattr(metadata, name, None))
    return general & known


def _valid_for_code(cc: int, nsn: pa.Array) -> np.ndarray:
    """``is_valid_number`` for numbers of one country calling code (nsn without leading 0)."""
    lengths = pc.utf8_length(nsn).to_numpy(zero_copy_only=False)
    regions = _GEO_CODES[cc]
    resolved = np.zeros(len(nsn), dtype=bool)
    valid = np.zeros(len(nsn), dtype=bool)
    for region in regions:
        metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
        if metadata is None:
            continue
        known = _type_known(nsn, lengths, metadata)
        if len(regions) > 1 and metadata.leading_digits is not None:
            picks = pc.match_substring_regex(nsn, pattern=f"^(?:{metadata.leading_digits})")
            chosen = picks.to_numpy(zero_copy_only=False).astype(bool)
        else:
            chosen = known
        chosen &= ~resolved
        valid[chosen] = known[chosen]
        resolved |= chosen
    return valid


def _prefix_len(text: pa.Array, pattern: str) -> np.ndarray:
    """Length of the leftmost-first regex match at the start of each value (-1: no match)."""
    # extract_regex refuses unnamed groups; carrier-code groups only matter for their span.
    plain = re.sub(r"(?<!\\)\((?!\?)", "(?:", pattern)
    found = pc.extract_regex(text, pattern=f"^(?P<p>(?:{plain}))")
    prefix = pc.struct_field(found, "p")
    lengths = pc.fill_null(pc.utf8_length(prefix), -1)
    return np.asarray(lengths.to_numpy(zero_copy_only=False), dtype=np.int64)


def _main_metadata(cc: int) -> object:
    return PhoneMetadata.metadata_for_region(_GEO_CODES[cc][0].upper(), None)


def _slice(arr: pa.Array, starts: np.ndarray) -> list[str]:
    values = arr.to_pylist()
    return [v[k:] for v, k in zip(values, starts.tolist(), strict=True)]


def fast_phones(values: list[str], regions: list[str | None]) -> list[str | None]:
    """Digits (``<cc><nsn>``) for values the fast path accepts, None for the rest.

    Args:
        values: Trimmed raw phone texts (at most 50 characters, no NA).
        regions: Region per value (upper-case alpha-2) or None.

    Returns:
        One entry per value.
    """
    n = len(values)
    out = np.full(n, None, dtype=object)
    if n == 0:
        return []
    text = pa.array(values, type=pa.large_string())
    clean = pc.match_substring_regex(text, pattern=_CLEAN).to_numpy(zero_copy_only=False)
    plus = pc.starts_with(text, "+").to_numpy(zero_copy_only=False)
    digits = pc.replace_substring_regex(text, pattern=r"[^0-9]", replacement="")
    region_arr = np.asarray(regions, dtype=object)
    cc = np.zeros(n, dtype=np.int64)  # 0: not handled by the fast path
    intl_digits = np.full(n, None, dtype=object)  # digits after "+" or the IDD
    nsn = np.full(n, None, dtype=object)

    intl = clean & plus
    intl_digits[intl] = np.asarray(digits.filter(pa.array(intl)).to_pylist(), dtype=object)
    for region in {r for r in regions if r}:
        metadata = PhoneMetadata.metadata_for_region(region, None)
        rows = np.flatnonzero(clean & ~plus & (region_arr == region))
        if metadata is None or len(rows) == 0 or metadata.national_prefix_transform_rule:
            continue
        sub = digits.take(pa.array(rows))
        idd = metadata.international_prefix or ""
        npp = metadata.national_prefix_for_parsing
        try:
            idd_len = _prefix_len(sub, idd) if idd else np.full(len(rows), -1)
            strip = _prefix_len(sub, npp) if npp else np.zeros(len(rows), dtype=np.int64)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue  # a metadata pattern RE2 cannot run: the library decides these
        by_idd = idd_len >= 0
        if idd.isdigit():
            intl_digits[rows[by_idd]] = _slice(sub.filter(pa.array(by_idd)), idd_len[by_idd])
            intl[rows[by_idd]] = True
        national = ~by_idd
        code = int(metadata.country_code or 0)
        # Numbers starting with the region's own calling code go through a heuristic in
        # phonenumbers (strip it or not): leave them to the library.
        national &= ~pc.starts_with(sub, str(code)).to_numpy(zero_copy_only=False)
        strip = np.where(strip < 0, 0, strip)
        chosen = rows[national]
        nsn[chosen] = _slice(sub.filter(pa.array(national)), strip[national])
        cc[chosen] = code

    # International shapes: the country code is the first known 1-3 digit prefix.
    for i in np.flatnonzero(intl):
        d = intl_digits[i]
        if not d or d[0] == "0":
            continue
        for width in (1, 2, 3):
            code = int(d[:width]) if len(d) >= width else -1
            if code in COUNTRY_CODE_TO_REGION_CODE:
                if code in _GEO_CODES:
                    main = _main_metadata(code)
                    npp = getattr(main, "national_prefix_for_parsing", None)
                    # A national prefix after the country code would be stripped: library.
                    if not (npp and re.match(npp, d[width:])):
                        cc[i], nsn[i] = code, d[width:]
                break

    for code in np.unique(cc[cc != 0]):
        rows = np.flatnonzero(cc == code)
        parts = nsn[rows].tolist()
        ok = np.asarray([2 <= len(p) <= 17 and not p.startswith("0") for p in parts])
        try:
            ok &= _valid_for_code(int(code), pa.array(parts, type=pa.large_string()))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue  # a metadata pattern RE2 cannot run: the library decides these
        out[rows[ok]] = [f"{code}{p}" for p, keep in zip(parts, ok.tolist(), strict=True) if keep]
    return out.tolist()
