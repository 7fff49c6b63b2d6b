"""Email normalization: trim, lower-case, validate.

A vectorized regex accepts the common plain-ASCII shape (a strict subset of what
``email-validator`` accepts); every other distinct value is checked once by ``email-validator``
(``check_deliverability=False``), except values without exactly one ``@``, which it always
refuses. Output is the lower-cased address, NA when invalid.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from email_validator import EmailNotValidError, validate_email

from moments_pipeline.identity._reasons import DroppedValueReason
from moments_pipeline.identity._text import STRING_DTYPE, read_text

MAX_EMAIL_LENGTH = 255

# Conservative on purpose: dot-atom local part of common characters, LDH labels, an alphabetic
# TLD. email-validator accepts all of these; it rejects special-use TLDs and checks IDNA, so
# those shapes are excluded here and left to it.
_FAST_EMAIL = (
    r"^[a-z0-9_%+\-]+(?:\.[a-z0-9_%+\-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
)
_SPECIAL_TLDS = r"\.(?:arpa|invalid|local|localhost|onion|test)$"


class Normalized(NamedTuple):
    """Result of normalizing one column.

    Attributes:
        values: Normalized values, NA where missing or invalid.
        invalid: True where a non-empty raw value was rejected.
        reason: ``DroppedValueReason`` value per rejected value (None elsewhere); None when
            the producer gives no reasons.
        detail: Optional specific detail per rejected value (None: the reason's default).
    """

    values: pd.Series
    invalid: pd.Series
    reason: np.ndarray | None = None
    detail: np.ndarray | None = None


def reasons_for(
    invalid: pd.Series, default: DroppedValueReason, **masks: tuple[np.ndarray, str]
) -> np.ndarray:
    """Reason per rejected value: ``default``, overridden by each (mask, reason) in order."""
    bad = invalid.to_numpy(dtype=bool)
    reason = np.full(len(bad), None, dtype=object)
    reason[bad] = default.value
    for mask, code in masks.values():
        reason[bad & mask] = code
    return reason


#: U+FFFD stands for text that could not be read (or a NUL a backend could not store): never
#: part of a real address, and it would let one backend send what another refuses.
_UNREADABLE_CHARS = ("\ufffd", "\x00")


def _library_email(value: str) -> str | None:
    if any(c in value for c in _UNREADABLE_CHARS):
        return None
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return None
    normalized = result.normalized.lower()
    return normalized if len(normalized) <= MAX_EMAIL_LENGTH else None


def fast_email_mask(lowered: pd.Series) -> pd.Series:
    """True where the vectorized check alone accepts an already lower-cased address."""
    fast = lowered.str.match(_FAST_EMAIL).fillna(False).astype(bool)
    local_len = lowered.str.find("@")
    fast &= (local_len <= 64).fillna(False) & (lowered.str.len() <= 254).fillna(False)
    fast &= ~lowered.str.contains(_SPECIAL_TLDS).fillna(False).astype(bool)
    # IDNA reserves "--" at label positions 3-4 (xn--, and any "ab--" label): library's call.
    fast &= ~lowered.str.contains("--", regex=False).fillna(False).astype(bool)
    return fast


def normalize_emails(raw: pd.Series) -> Normalized:
    """Normalize a column of email addresses.

    Args:
        raw: Raw values (any dtype; NULL, empty and whitespace-only mean missing).

    Returns:
        Lower-cased valid addresses and the mask of rejected non-empty values.
    """
    read = read_text(raw)
    text = read.values
    unreadable = pd.notna(read.unreadable)
    present = text.notna() | unreadable
    lowered = text.str.lower()
    too_long = (lowered.str.len() > MAX_EMAIL_LENGTH).fillna(False).astype(bool)
    lowered = lowered.mask(too_long, pd.NA)
    fast = fast_email_mask(lowered)
    values = lowered.where(fast, pd.NA).astype(STRING_DTYPE)
    # Without exactly one "@" email-validator always refuses (it allows no quoted local
    # part, the only place a second "@" could live): no need to ask it.
    one_at = lowered.str.count("@").eq(1).fillna(False).astype(bool)
    slow = lowered.notna() & ~fast & one_at
    if slow.any():
        distinct = pd.unique(lowered[slow].to_numpy())
        checked = {v: _library_email(v) for v in distinct}
        values[slow] = lowered[slow].map(checked).astype(STRING_DTYPE)
    invalid = present & values.isna()
    reason = reasons_for(
        invalid,
        DroppedValueReason.INVALID_EMAIL,
        long=(too_long.to_numpy(), DroppedValueReason.VALUE_TOO_LONG.value),
        unreadable=(unreadable, DroppedValueReason.UNREADABLE_VALUE.value),
    )
    return Normalized(values, invalid, reason, read.unreadable)
