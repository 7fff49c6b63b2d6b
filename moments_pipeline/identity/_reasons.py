"""Reason codes for quarantined rows and dropped contact values.

A quarantined row is never sent; a dropped value is one contact value (an email or phone of
any column but the row's identifyBy) that was refused. Both are recorded with a non-empty
detail, never silently lost.
"""

from __future__ import annotations

from enum import StrEnum


class QuarantineReason(StrEnum):
    """Why an input row was quarantined (kept out of every request).

    Attributes:
        MISSING_IDENTIFY_BY: The identifyBy column is empty.
        INVALID_IDENTIFY_BY: The identifyBy value is not a valid email/phone or is too long.
        INVALID_EXTERNAL_ID: The externalId is longer than the spec's 256 characters, holds
            control characters, or cannot be read exactly (a float at or beyond 2**53, inf,
            a fraction: see ``_text``); the detail says which.
        IDENTITY_CONFLICT: The row shares an identifier with a row of another person.
        SUPERSEDED_BY_MORE_RECENT: ``keep_most_recent`` kept another person of the conflict.
        SHARED_IDENTIFY_BY: ``drop_shared_identifier`` removed the row's identifyBy, which
            another person also uses.
        WOULD_MERGE_PRIOR_PROFILES: The person's identifiers were already sent (identity
            ledger) for two or more different profiles; sending them together would merge
            those profiles.
        IDENTIFIER_SENT_FOR_OTHER_PERSON: The person's identifiers point at one prior profile
            that already holds a different externalId (another person).
        UNSENDABLE_IDENTIFY_BY: A second, different identifyBy of a non-contact type (e.g.
            FACEBOOK) for the same person; only one can be sent.
        ROW_ID_MISSING: The row id column is empty (or unreadable) for this row; its
            quarantine ``row_id`` is ``#<position>`` (0-based position in the source rows).
        ROW_ID_DUPLICATE: Several rows share this row id; none can be told apart, so all
            of them are quarantined: the first under the id, each later one as
            ``<id>#<position>`` (quarantine row ids stay unique).
        NO_USABLE_IDENTIFIER: No identifyBy, and every other identifier the row gives was
            refused (each is a dropped value); a row giving nothing at all is
            ``MISSING_IDENTIFY_BY``, a refused identifyBy ``INVALID_IDENTIFY_BY``.
    """

    MISSING_IDENTIFY_BY = "MISSING_IDENTIFY_BY"
    INVALID_IDENTIFY_BY = "INVALID_IDENTIFY_BY"
    INVALID_EXTERNAL_ID = "INVALID_EXTERNAL_ID"
    IDENTITY_CONFLICT = "IDENTITY_CONFLICT"
    SUPERSEDED_BY_MORE_RECENT = "SUPERSEDED_BY_MORE_RECENT"
    SHARED_IDENTIFY_BY = "SHARED_IDENTIFY_BY"
    WOULD_MERGE_PRIOR_PROFILES = "WOULD_MERGE_PRIOR_PROFILES"
    IDENTIFIER_SENT_FOR_OTHER_PERSON = "IDENTIFIER_SENT_FOR_OTHER_PERSON"
    UNSENDABLE_IDENTIFY_BY = "UNSENDABLE_IDENTIFY_BY"
    ROW_ID_MISSING = "ROW_ID_MISSING"
    ROW_ID_DUPLICATE = "ROW_ID_DUPLICATE"
    NO_USABLE_IDENTIFIER = "NO_USABLE_IDENTIFIER"


class DroppedValueReason(StrEnum):
    """Why one contact value was refused (left out of the participant, if any).

    Attributes:
        INVALID_EMAIL: Not a valid email address (or longer than 255 characters).
        INVALID_PHONE: Not a valid phone number for its region (or longer than 50 characters).
        SHARED_IDENTIFIER: ``drop_shared_identifier`` removed it: another person uses it.
        PHONE_HAS_LETTERS: A phone holding letters (``1-800-FLOWERS``, ``n/a``): letters are
            never read as digits.
        PHONE_HAS_EXTENSION: A phone with an extension (``ext 12``, ``x12``, ``#12``): the
            number without it is a switchboard, which two people can share.
        VALUE_TOO_LONG: Longer than the limit of its kind (email 255, phone 50).
        UNREADABLE_VALUE: A number that cannot be read exactly as text (see ``_text``).
    """

    INVALID_EMAIL = "INVALID_EMAIL"
    INVALID_PHONE = "INVALID_PHONE"
    SHARED_IDENTIFIER = "SHARED_IDENTIFIER"
    PHONE_HAS_LETTERS = "PHONE_HAS_LETTERS"
    PHONE_HAS_EXTENSION = "PHONE_HAS_EXTENSION"
    VALUE_TOO_LONG = "VALUE_TOO_LONG"
    UNREADABLE_VALUE = "UNREADABLE_VALUE"


#: The detail recorded with each dropped value (a reason always carries one).
DROPPED_DETAILS: dict[str, str] = {
    DroppedValueReason.INVALID_EMAIL: "not a valid email address",
    DroppedValueReason.INVALID_PHONE: "not a valid phone number for its region",
    DroppedValueReason.SHARED_IDENTIFIER: "another person of the audience uses it",
    DroppedValueReason.PHONE_HAS_LETTERS: "letters are never read as phone digits",
    DroppedValueReason.PHONE_HAS_EXTENSION: "a number with an extension is not one person's",
    DroppedValueReason.VALUE_TOO_LONG: "longer than its kind allows",
    DroppedValueReason.UNREADABLE_VALUE: "cannot be read exactly as text",
}
