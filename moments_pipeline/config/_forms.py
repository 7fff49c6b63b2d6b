"""Pydantic models of a form source: warehouse rows submitted to a Moments form, or view events.

A form source lives in the ``forms/`` subdirectory of the audiences directory (one YAML file
each), read by the same loader as audiences (file, line and field in every error, did-you-mean
for unknown keys, repeated keys refused). Two kinds, told apart by ``views``:

- submissions (``fields`` given): each source row becomes one submit-form-data request, its
  columns mapped to the form's ``fieldId`` values;
- views (``views: true``): each source row is one view event, one increment-view-count request.

Like audiences, every table and column name is a plain identifier and a ``query:`` must be one
read-only SELECT (the same ``SourceConfig``). A row id column is required: it is what makes the
submission key deterministic, and row positions move when the table changes.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator, model_validator

from moments_pipeline.config._models import (
    Column,
    RegionCode,
    ScheduleConfig,
    SourceConfig,
    _Strict,
)

#: A form id as Infobip gives them (a UUID in the spec's examples); never SQL, only a path
#: segment, which the client percent-encodes anyway.
_FORM_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
#: ``ib-submission-source`` / ``ib-submission-form-campaign`` are HTTP header values.
_HEADER_TEXT_RE = re.compile(r"^[\x20-\x7e]{1,255}$")


def _check_form_id(value: str) -> str:
    if not _FORM_ID_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a form id (letters, digits, '-' and '_')")
    return value


def _check_header_text(value: str) -> str:
    if not _HEADER_TEXT_RE.fullmatch(value):
        raise ValueError("must be 1 to 255 printable ASCII characters (it is sent as a header)")
    return value


FormId = Annotated[str, AfterValidator(_check_form_id)]
HeaderText = Annotated[str, AfterValidator(_check_header_text)]


class FormTarget(_Strict):
    """The form a source writes to.

    Attributes:
        id: The form id (get-forms / get-form give it).
        source: Sent as ``ib-submission-source`` with each submission.
        campaign: Sent as ``ib-submission-form-campaign`` with each submission.
    """

    id: FormId
    source: HeaderText | None = None
    campaign: HeaderText | None = None


class FormSourceConfig(_Strict):
    """One form source: rows submitted to a form (``fields``) or view events (``views``).

    Attributes:
        name: Identifier-safe name (asset names and ledger keys).
        description: Free text for humans.
        form: Target form, submission source and campaign.
        source: Where rows come from (table or read-only query); ``row_id_column`` required.
        fields: Form ``fieldId`` -> source column (submissions).
        views: True for a source of view events (each row counts one view).
        default_region: Region to read phone numbers written without a country code.
        region_column: Column holding a per-row region (ISO alpha-2).
        schedule: Cron and timezone of a scheduled run, as for audiences (None: when launched).
    """

    name: Column
    description: str = ""
    form: FormTarget
    source: SourceConfig
    fields: dict[Annotated[str, Field(min_length=1, max_length=255)], Column] = Field(
        default_factory=dict
    )
    views: bool = False
    default_region: RegionCode | None = None
    region_column: Column | None = None
    schedule: ScheduleConfig | None = None

    @field_validator("source")
    @classmethod
    def _row_id_required(cls, source: SourceConfig) -> SourceConfig:
        if source.row_id_column is None:
            raise ValueError(
                "row_id_column is required for a form source: it makes each row's "
                "submission key stable across runs (row positions are not)"
            )
        return source

    @model_validator(mode="after")
    def _one_kind(self) -> FormSourceConfig:
        if self.name == "catalog":
            raise ValueError("name 'catalog' is taken by the forms/catalog asset")
        if self.views and self.fields:
            raise ValueError("a views source takes no 'fields' (each row counts one view)")
        if not self.views and not self.fields:
            raise ValueError("give 'fields' (fieldId -> column) or 'views: true'")
        return self

    def source_columns(self) -> list[str]:
        """Every source column the form source reads, in a stable order without repeats."""
        candidates = [self.source.row_id_column, *self.fields.values(), self.region_column]
        return list(dict.fromkeys(c for c in candidates if c is not None))

    def source_field_paths(self) -> dict[str, list[str]]:
        """Source column -> the fields naming it (``fields.email``...), for error messages."""
        named = [
            ("source.row_id_column", self.source.row_id_column),
            *((f"fields.{field_id}", column) for field_id, column in self.fields.items()),
            ("region_column", self.region_column),
        ]
        paths: dict[str, list[str]] = {}
        for path, column in named:
            if column is not None:
                paths.setdefault(column, []).append(path)
        return paths
