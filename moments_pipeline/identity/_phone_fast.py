"""Vectorized phone decisions replaying ``phonenumbers``' own parse and validity, over arrays.

For clean shapes (digits with spaces, dashes, dots, parentheses, optionally a leading ``+``)
it replays, in pyarrow (RE2) kernels over whole arrays instead of per value, what
``phonenumbers.parse`` + ``is_valid_number`` do:

- ``+<digits>``, or the region's IDD followed by a non-zero digit: the country code is the
  first 1-3 digit prefix the library knows (``_extract_country_code``);
- otherwise the region's own calling code, unless the digits start with it (the library then
  runs a heuristic: left to it);
- then ``_maybe_strip_national_prefix_carrier_code`` (strip only when the original is not a
  viable number or the rest is) and the ``_test_number_length`` guard on the stripped number,
  with the metadata of the number's main region;
- validity: ``region_code_for_number`` (leading digits, then number type) and
  ``_number_type_helper`` (general description, then every number type).

Where that replay is exact (``decided``), its answer, accept OR reject, is the library's.
Anything else (non-geographic codes, national prefix transform rules, patterns RE2 cannot run,
the calling-code heuristic, unclean text) is left undecided for the library itself.
``tests/identity/test_normalization.py`` checks agreement on generated samples.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata

_CLEAN = r"^\+?[0-9 ().\-]+$"
_MIN_NSN, _MAX_NSN = 2, 17
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
_KNOWN_CODES = np.array(sorted(COUNTRY_CODE_TO_REGION_CODE), dtype=np.int64)
_RE2_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError)


def _bools(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


def _lengths(array: pa.Array) -> np.ndarray:
    return np.asarray(pc.utf8_length(array).to_numpy(zero_copy_only=False), dtype=np.int64)


def _full_match(values: pa.Array, pattern: str | None) -> np.ndarray:
    """``_match_national_number(value, desc, False)``: False where the pattern is absent."""
    if not pattern:
        return np.zeros(len(values), dtype=bool)
    return _bools(pc.match_substring_regex(values, pattern=f"^(?:{pattern})$"))


def _desc_mask(nsn: pa.Array, lengths: np.ndarray, desc: object) -> np.ndarray:
    """``_is_number_matching_desc`` over an array (False where the desc is absent)."""
    pattern = getattr(desc, "national_number_pattern", None)
    if desc is None or not pattern:
        return np.zeros(len(nsn), dtype=bool)
    possible = getattr(desc, "possible_length", ()) or ()
    ok = np.isin(lengths, list(possible)) if len(possible) else np.ones(len(nsn), dtype=bool)
    if not ok.any():
        return ok
    rows = np.flatnonzero(ok)
    ok[rows] = _full_match(nsn.take(pa.array(rows)), pattern)
    return ok


def _type_known(nsn: pa.Array, lengths: np.ndarray, metadata: object) -> np.ndarray:
    """``_number_type_helper(...) != UNKNOWN`` per value."""
    general = _desc_mask(nsn, lengths, metadata.general_desc)  # type: ignore[attr-defined]
    rows = np.flatnonzero(general)
    if len(rows) == 0:
        return general
    sub, sub_lengths = nsn.take(pa.array(rows)), lengths[rows]
    known = np.zeros(len(rows), dtype=bool)
    for name in _TYPE_DESCS:
        known |= _desc_mask(sub, sub_lengths, getattr(metadata, name, None))
    out = np.zeros(len(nsn), dtype=bool)
    out[rows] = known
    return out


def _valid_for_code(cc: int, nsn: pa.Array) -> np.ndarray:
    """``is_valid_number`` for national significant numbers of one geographic calling code."""
    lengths = _lengths(nsn)
    regions = _GEO_CODES[cc]
    valid = np.zeros(len(nsn), dtype=bool)
    open_rows = np.arange(len(nsn))
    for region in regions:
        if len(open_rows) == 0:
            break
        metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
        if metadata is None:
            continue
        sub = nsn.take(pa.array(open_rows))
        if len(regions) == 1:
            valid[open_rows] = _type_known(sub, lengths[open_rows], metadata)
            break
        if metadata.leading_digits is not None:
            pattern = f"^(?:{metadata.leading_digits})"
            chosen = _bools(pc.match_substring_regex(sub, pattern=pattern))
            rows = open_rows[chosen]
            valid[rows] = _type_known(sub.filter(pa.array(chosen)), lengths[rows], metadata)
        else:
            chosen = _type_known(sub, lengths[open_rows], metadata)
            valid[open_rows[chosen]] = True
        open_rows = open_rows[~chosen]
    return valid


def _strip_prefix(values: pa.Array, pattern: str) -> tuple[np.ndarray, pa.Array]:
    """Rows where ``re.match(pattern)`` succeeds, and the values with that match removed."""
    anchored = f"^(?:{pattern})"
    matched = _bools(pc.match_substring_regex(values, pattern=anchored))
    stripped = pc.replace_substring_regex(
        values, pattern=anchored, replacement="", max_replacements=1
    )
    return matched, stripped


def _possible_length(lengths: np.ndarray, metadata: object) -> np.ndarray:
    """``_test_number_length(..)`` is IS_POSSIBLE or TOO_LONG (the library keeps the strip)."""
    general = metadata.general_desc  # type: ignore[attr-defined]
    possible = list(general.possible_length or ())
    local = list(general.possible_length_local_only or ())
    return ~np.isin(lengths, local) & (np.isin(lengths, possible) | (lengths > max(possible)))


def _national_number(nsn: pa.Array, metadata: object) -> tuple[pa.Array, np.ndarray]:
    """Replay of the national-prefix stripping of ``parse``; also the rows replayed exactly."""
    npp = getattr(metadata, "national_prefix_for_parsing", None)
    exact = np.ones(len(nsn), dtype=bool)
    if not npp or len(nsn) == 0:
        return nsn, exact
    try:
        matched, stripped = _strip_prefix(nsn, npp)
        general = metadata.general_desc.national_number_pattern  # type: ignore[attr-defined]
        if getattr(metadata, "national_prefix_transform_rule", None) or not (
            metadata.general_desc.possible_length  # type: ignore[attr-defined]
        ):
            return nsn, ~matched
        viable_original = _full_match(nsn, general)
        viable_stripped = _full_match(stripped, general)
    except _RE2_ERRORS:
        return nsn, np.zeros(len(nsn), dtype=bool)
    strip = matched & ~(viable_original & ~viable_stripped)
    strip &= _possible_length(_lengths(stripped), metadata)
    return pc.if_else(pa.array(strip), stripped, nsn), exact


def _country_codes(rest: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """``_extract_country_code``: the code and its width per value (0, 0 when none)."""
    lengths = _lengths(rest)
    code = np.zeros(len(rest), dtype=np.int64)
    width = np.zeros(len(rest), dtype=np.int64)
    for w in (1, 2, 3):
        long_enough = pa.array(lengths >= w)
        head = pc.if_else(long_enough, pc.utf8_slice_codeunits(rest, 0, w), "0")
        value = np.asarray(pc.cast(head, pa.int64()).to_numpy(zero_copy_only=False))
        found = (width == 0) & (lengths >= w) & np.isin(value, _KNOWN_CODES)
        code[found], width[found] = value[found], w
    return code, width


def decide_phones(
    values: pa.Array, region_codes: np.ndarray, region_names: list[str]
) -> tuple[pa.Array, np.ndarray]:
    """Decide distinct (trimmed raw phone, region) pairs where the replay is exact.

    Args:
        values: Raw phone texts (no nulls, at most 50 characters).
        region_codes: Index into ``region_names`` per value, -1 for no region.
        region_names: Upper-case ISO alpha-2 regions.

    Returns:
        Digits ``<cc><nsn>`` (Arrow strings, null where not accepted) and the mask of values
        whose outcome (accepted or rejected) is decided; the rest need the library.
    """
    n = len(values)
    decided = np.zeros(n, dtype=bool)
    accepted_rows: list[np.ndarray] = []
    accepted_digits: list[pa.Array] = []
    if n == 0:
        return _assemble(n, accepted_rows, accepted_digits), decided
    text = values.cast(pa.large_string())
    clean = _bools(pc.match_substring_regex(text, pattern=_CLEAN))
    plus = _bools(pc.starts_with(text, "+"))
    digits = pc.replace_substring_regex(text, pattern=r"[^0-9]", replacement="")
    # Pieces of (rows, digits after "+" or the IDD) and (rows, cc, national number).
    intl_rows: list[np.ndarray] = [np.flatnonzero(clean & plus)]
    intl_rest: list[pa.Array] = [digits.filter(pa.array(clean & plus))]
    nat_rows: list[np.ndarray] = []
    nat_cc: list[np.ndarray] = []
    nat_nsn: list[pa.Array] = []
    national_exact = np.zeros(n, dtype=bool)

    known_regions = np.array(
        [PhoneMetadata.metadata_for_region(r, None) is not None for r in region_names] + [False]
    )
    # parse() refuses a number without "+" when the region is missing or unknown.
    no_region = clean & ~plus & ~known_regions[region_codes]
    decided[no_region] = True
    for index, region in enumerate(region_names):
        metadata = PhoneMetadata.metadata_for_region(region, None)
        rows = np.flatnonzero(clean & ~plus & (region_codes == index))
        if metadata is None or len(rows) == 0:
            continue
        sub = digits.take(pa.array(rows))
        idd = metadata.international_prefix or ""
        try:
            by_idd, after_idd = _strip_prefix(sub, idd) if idd else (np.zeros(len(rows), bool), sub)
        except _RE2_ERRORS:
            continue
        # The library strips the IDD only when a non-zero digit follows it.
        after_zero = _bools(pc.starts_with(after_idd, "0"))
        if idd.isdigit():
            take_idd = by_idd & ~after_zero
            intl_rows.append(rows[take_idd])
            intl_rest.append(after_idd.filter(pa.array(take_idd)))
        national = ~by_idd
        code = int(metadata.country_code or 0)
        # Digits starting with the region's own calling code go through a heuristic: library.
        national &= ~_bools(pc.starts_with(sub, str(code)))
        nsn, exact = _national_number(sub.filter(pa.array(national)), metadata)
        nat_rows.append(rows[national])
        nat_cc.append(np.full(int(national.sum()), code, dtype=np.int64))
        nat_nsn.append(nsn)
        national_exact[rows[national]] = exact

    # International shapes: country code, then the national prefix of its main region.
    rows_i = np.concatenate(intl_rows)
    rest = pa.concat_arrays([a.cast(pa.large_string()) for a in intl_rest])
    intl_code, intl_width = _country_codes(rest)
    zero_lead = _bools(pc.starts_with(rest, "0"))
    geo = np.isin(intl_code, list(_GEO_CODES)) & ~zero_lead
    for w in (1, 2, 3):
        for cc in np.unique(intl_code[geo & (intl_width == w)]).tolist():
            sel = geo & (intl_code == cc) & (intl_width == w)
            nsn = pc.utf8_slice_codeunits(rest.filter(pa.array(sel)), w)
            main = PhoneMetadata.metadata_for_region(_GEO_CODES[cc][0].upper(), None)
            if main is None:
                continue
            nsn, exact = _national_number(nsn, main)
            nat_rows.append(rows_i[sel])
            nat_cc.append(np.full(int(sel.sum()), cc, dtype=np.int64))
            nat_nsn.append(nsn)
            national_exact[rows_i[sel]] = exact

    if not nat_rows:
        return _assemble(n, accepted_rows, accepted_digits), decided
    all_rows = np.concatenate(nat_rows)
    all_cc = np.concatenate(nat_cc)
    all_nsn = pa.concat_arrays([a.cast(pa.large_string()) for a in nat_nsn])
    lengths = _lengths(all_nsn)
    sized = (lengths >= _MIN_NSN) & (lengths <= _MAX_NSN)
    # Fewer than 3 digits can fail parse()'s viability pattern first: the library's call.
    enough_digits = _lengths(digits) >= 3
    national_exact &= enough_digits
    for cc in np.unique(all_cc).tolist():
        sel = all_cc == cc
        try:
            valid = _valid_for_code(cc, all_nsn.filter(pa.array(sel)))
        except _RE2_ERRORS:
            continue  # a metadata pattern RE2 cannot run: the library decides these
        rows = all_rows[sel]
        ok = valid & sized[sel] & enough_digits[rows]
        accepted_rows.append(rows[ok])
        accepted_digits.append(
            pc.binary_join_element_wise(
                pa.scalar(str(cc), pa.large_string()),
                all_nsn.filter(pa.array(sel)).filter(pa.array(ok)),
                pa.scalar("", pa.large_string()),
            )
        )
        decided[rows[ok]] = True
        # A rejection is the library's only where the whole replay was exact.
        decided[rows[~ok & national_exact[rows]]] = True
    return _assemble(n, accepted_rows, accepted_digits), decided


def _assemble(n: int, rows: list[np.ndarray], pieces: list[pa.Array]) -> pa.Array:
    """One array of length ``n``: ``pieces[k][i]`` at ``rows[k][i]``, null elsewhere."""
    position = np.full(n, -1, dtype=np.int64)
    if rows:
        taken = np.concatenate(rows)
        position[taken] = np.arange(len(taken))
    source = pa.concat_arrays([pa.array([], pa.large_string()), *pieces])
    return source.take(pa.array(position, mask=position < 0))
