"""Form-source rows -> submissions, with the audience sync's identity rules applied.

A submission creates or updates a People profile through the form's identifier fields
(``personField`` email, phone, externalId), so two different people must never share an
identifier across submissions. Rather than a second set of rules, the source is described as an
audience (``form_audience``: its email fields as emails, phone fields as phones, its externalId
field as the external id) and run through ``prepare_audience``: the same normalization, row id
checks, linking of rows that share an identifier, conflict quarantine, prior-profile check
against the identity ledger and dropped-value records. Each row of a prepared person is then
checked against the form (``_form_rows.check_row``) with its identifiers replaced by their
normalized form, so what is submitted is what the identity ledger records.

Pure: no I/O. Every input row ends in exactly one submission or in ``quarantine``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from moments_pipeline.config import (
    AudienceConfig,
    FormSourceConfig,
    IdentifierType,
)
from moments_pipeline.identity._emails import normalize_emails
from moments_pipeline.identity._form_rows import check_row, identifier_fields
from moments_pipeline.identity._phones import normalize_phones
from moments_pipeline.identity._prepare import prepare_audience
from moments_pipeline.identity._row_ids import row_ids as read_row_ids
from moments_pipeline.identity._rules import EMAIL, EXTERNAL_ID, PHONE

__all__ = [
    "FORM_FIELD_INVALID",
    "FormSourceError",
    "FormSubmissionRow",
    "PreparedForm",
    "form_audience",
    "prepare_form",
]

FORM_FIELD_INVALID = "FORM_FIELD_INVALID"
"""Quarantine reason: the row breaks a rule of the form's current definition."""

#: Campaign id of the audience a form source is described as; never sent anywhere.
_NO_FLOW = 1


class FormSourceError(ValueError):
    """The form source cannot be described as an identity-safe audience (names the field)."""


@dataclass(frozen=True)
class FormSubmissionRow:
    """One row ready to submit.

    Attributes:
        row_id: The source row id.
        person_key: The person it belongs to (identity rules' person key).
        profile_anchor: The Infobip profile it updates (the identity ledger's anchor).
        data: fieldId -> value, checked and normalized.
        identifiers: (kind, identifier) the submission carries, identifier fields only.
    """

    row_id: str
    person_key: str
    profile_anchor: str
    data: dict[str, Any]
    identifiers: tuple[tuple[str, str], ...]


@dataclass
class PreparedForm:
    """Result of ``prepare_form``: submissions, quarantine (row_id, reason, detail), dropped."""

    submissions: list[FormSubmissionRow]
    quarantine: pd.DataFrame
    dropped_values: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)


def form_audience(source: FormSourceConfig, form: Mapping[str, Any]) -> AudienceConfig:
    """The audience a form source is, for the identity rules (never sent to a flow).

    Raises:
        FormSourceError: no email or phone field is mapped (a submission could not be
            attributed to a person), or phone fields without a region to read them.
    """
    kinds = identifier_fields(form)
    mapped = [
        (field_id, column, kinds[field_id])
        for field_id, column in source.fields.items()
        if field_id in kinds
    ]
    emails = [column for _, column, kind in mapped if kind == EMAIL]
    phones = [column for _, column, kind in mapped if kind == PHONE]
    external = [column for _, column, kind in mapped if kind == EXTERNAL_ID]
    if not emails and not phones:
        raise FormSourceError(
            "fields: no column maps an email or phone field of the form (personField "
            "email/phone), so a submission could not be tied to one person"
        )
    identify = {
        "column": (emails or phones)[0],
        "type": IdentifierType.EMAIL if emails else IdentifierType.PHONE,
    }
    identity: dict[str, Any] = {
        "identify_by": identify,
        "emails": emails,
        "phones": phones,
        "default_region": source.default_region,
        "region_column": source.region_column,
    }
    if external:
        identity["external_id"] = external[0]
    try:
        return AudienceConfig.model_validate(
            {
                "name": source.name,
                "source": source.source.model_dump(),
                "identity": identity,
                "flow": {"campaign_id": _NO_FLOW},
            }
        )
    except ValueError as exc:  # pydantic's ValidationError: one message per problem
        errors = exc.errors() if hasattr(exc, "errors") else [{"msg": str(exc)}]
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in errors)
        raise FormSourceError(f"fields: {problems} (set default_region or region_column)") from None


def _normalized_identifiers(frame: pd.DataFrame, audience: AudienceConfig) -> dict[str, list[Any]]:
    """Source column -> per-row normalized identifier (None where missing or refused)."""
    identity = audience.identity
    out: dict[str, list[Any]] = {}
    for column in identity.emails:
        out[column] = (
            normalize_emails(frame[column])
            .values.astype(object)
            .where(lambda s: s.notna(), None)
            .tolist()
        )
    regions = frame[identity.region_column] if identity.region_column else None
    for column in identity.phones:
        values = normalize_phones(
            frame[column], regions=regions, default_region=identity.default_region
        ).values
        out[column] = values.astype(object).where(values.notna(), None).tolist()
    if identity.external_id:
        out.setdefault(
            identity.external_id,
            [None if pd.isna(v) else str(v) for v in frame[identity.external_id]],
        )
    return out


def prepare_form(
    frame: pd.DataFrame,
    source: FormSourceConfig,
    form: Mapping[str, Any],
    *,
    prior_identities: pd.DataFrame | None = None,
) -> PreparedForm:
    """Identity-check and form-check every row of a form source.

    Args:
        frame: The source rows (every column of ``source.source_columns()``).
        source: The form source.
        form: The form's current definition (``ApiFormDto`` JSON, camelCase keys).
        prior_identities: The identity ledger (``kind``, ``identifier``, ``person_key``).

    Raises:
        FormSourceError: see ``form_audience``.
        FormDefinitionError: a rule of the form cannot be applied.
    """
    frame = frame.reset_index(drop=True)
    audience = form_audience(source, form)
    prepared = prepare_audience(frame, audience, prior_identities=prior_identities)
    ids = read_row_ids(frame, audience).ids
    position = {str(row_id): i for i, row_id in enumerate(ids)}
    normalized = _normalized_identifiers(frame, audience)
    kinds = identifier_fields(form)
    columns = {field_id: frame[column].tolist() for field_id, column in source.fields.items()}
    submissions: list[FormSubmissionRow] = []
    refused: list[dict[str, Any]] = []
    people = prepared.participants
    for person_key, anchor, rows in zip(
        people["person_key"], people["profile_anchor"], people["source_rows"], strict=True
    ):
        for row_id in rows:
            i = position[str(row_id)]
            raw: dict[str, Any] = {}
            carried: list[tuple[str, str]] = []
            for field_id, values in columns.items():
                column = source.fields[field_id]
                if field_id in kinds and column in normalized:
                    value = normalized[column][i]
                    if value is not None:
                        carried.append((kinds[field_id], str(value)))
                    raw[field_id] = value
                else:
                    raw[field_id] = values[i]
            checked = check_row(form, raw)
            if checked.problems:
                refused.append(
                    {
                        "row_id": str(row_id),
                        "reason": FORM_FIELD_INVALID,
                        "detail": "; ".join(checked.problems),
                    }
                )
                continue
            submissions.append(
                FormSubmissionRow(
                    row_id=str(row_id),
                    person_key=str(person_key),
                    profile_anchor=str(anchor),
                    data=checked.values,
                    identifiers=tuple(dict.fromkeys(carried)),
                )
            )
    quarantine = pd.concat(
        [
            prepared.quarantine[["row_id", "reason", "detail"]].astype(object),
            pd.DataFrame(refused, columns=["row_id", "reason", "detail"], dtype=object),
        ],
        ignore_index=True,
    )
    counts = {
        "input_rows": len(frame),
        "submissions": len(submissions),
        "quarantined_rows": len(quarantine),
        "dropped_values": len(prepared.dropped_values),
    }
    for reason, n in quarantine["reason"].value_counts().items():
        counts[f"quarantined:{reason}"] = int(n)
    if len(submissions) + len(quarantine) != len(frame):  # every row accounted for, in code
        raise AssertionError("form rows lost between preparation and submission")
    return PreparedForm(submissions, quarantine, prepared.dropped_values, counts)
