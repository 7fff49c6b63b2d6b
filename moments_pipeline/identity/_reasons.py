"""Reason codes for quarantined rows and dropped contact values.

A quarantined row is never sent; a dropped value is one secondary contact (an extra email or
phone) left out of an otherwise sent participant. Both are recorded, never silently lost.
"""

from __future__ import annotations

from enum import StrEnum


class QuarantineReason(StrEnum):
    """Why an input row was quarantined (kept out of every request).

    Attributes:
        MISSING_IDENTIFY_BY: The identifyBy column is empty.
        INVALID_IDENTIFY_BY: The identifyBy value is not a valid email/phone or is too long.
        INVALID_EXTERNAL_ID: The externalId is longer than the spec's 256 characters.
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


class DroppedValueReason(StrEnum):
    """Why one secondary contact value was left out of a sent participant.

    Attributes:
        INVALID_EMAIL: Not a valid email address (or longer than 255 characters).
        INVALID_PHONE: Not a valid phone number for its region (or longer than 50 characters).
        SHARED_IDENTIFIER: ``drop_shared_identifier`` removed it: another person uses it.
    """

    INVALID_EMAIL = "INVALID_EMAIL"
    INVALID_PHONE = "INVALID_PHONE"
    SHARED_IDENTIFIER = "SHARED_IDENTIFIER"
