"""Identity preparation: vectorized normalization, dedupe and conflict detection in pandas.

Pure functions of DataFrames: no I/O, no network, no Dagster. Every input row ends either in a
participant or in quarantine with a reason; an invalid secondary contact (an extra email or
phone) is dropped from the participant and recorded in ``PreparedAudience.dropped_values``.
"""

from moments_pipeline.identity import _rules as rules
from moments_pipeline.identity._emails import Normalized, normalize_emails
from moments_pipeline.identity._flow_payload import to_flow_participants
from moments_pipeline.identity._form_people import (
    FORM_FIELD_INVALID,
    FormSourceError,
    FormSubmissionRow,
    PreparedForm,
    form_audience,
    prepare_form,
)
from moments_pipeline.identity._form_rows import (
    FormDefinitionError,
    check_row,
    identifier_fields,
    mapping_problems,
)
from moments_pipeline.identity._mask import mask_anchor, mask_identifier
from moments_pipeline.identity._participants import (
    IDENTITY_COLUMNS,
    IdentityInvariantError,
    participant_identities,
)
from moments_pipeline.identity._phones import library_phone, normalize_phones
from moments_pipeline.identity._prepare import PreparedAudience, prepare_audience
from moments_pipeline.identity._reasons import DroppedValueReason, QuarantineReason

__all__ = [
    "FORM_FIELD_INVALID",
    "IDENTITY_COLUMNS",
    "DroppedValueReason",
    "FormDefinitionError",
    "FormSourceError",
    "FormSubmissionRow",
    "IdentityInvariantError",
    "Normalized",
    "PreparedAudience",
    "PreparedForm",
    "QuarantineReason",
    "check_row",
    "form_audience",
    "identifier_fields",
    "library_phone",
    "mapping_problems",
    "mask_anchor",
    "mask_identifier",
    "normalize_emails",
    "normalize_phones",
    "participant_identities",
    "prepare_audience",
    "prepare_form",
    "rules",
    "to_flow_participants",
]
