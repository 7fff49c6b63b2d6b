"""Pydantic v2 models of an audience definition (one YAML file per audience).

Every column and table name is validated as a plain SQL identifier here, so nothing that reaches
the warehouse layer can carry SQL. Unknown fields are refused (``extra="forbid"``) so a typo in a
YAML key is an error, not a silently ignored setting.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from moments_pipeline.config._project import LEDGER_CONNECTION
from moments_pipeline.warehouse import check_select_query, pipeline_table_refusal

IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
TABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62}){0,2}$")
_REGION_RE = re.compile(r"^[A-Z]{2}$")

#: IamPersonV2 attributes a config may map from columns (writable, scalar ones from the spec).
PERSON_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "firstName",
        "lastName",
        "middleName",
        "address",
        "city",
        "country",
        "gender",
        "birthDate",
        "preferredLanguage",
        "profilePicture",
    }
)


def _check_identifier(value: str) -> str:
    if not IDENTIFIER_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a plain identifier (letters, digits, underscore; "
            "not starting with a digit; at most 63 characters)"
        )
    return value


def _check_table(value: str) -> str:
    if not TABLE_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a table name of the form [catalog.]schema.table or table "
            "made of plain identifiers"
        )
    refusal = pipeline_table_refusal(value)
    if refusal:
        raise ValueError(refusal)
    return value


def _check_region(value: str) -> str:
    if not _REGION_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not an ISO 3166 alpha-2 region code (e.g. CH, US)")
    return value


Column = Annotated[str, AfterValidator(_check_identifier)]
TableName = Annotated[str, AfterValidator(_check_table)]
RegionCode = Annotated[str, AfterValidator(_check_region)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IdentifierType(StrEnum):
    """``identifyBy.type`` values of the spec (WebhookPersonUniqueFieldType)."""

    EMAIL = "EMAIL"
    PHONE = "PHONE"
    FACEBOOK = "FACEBOOK"
    LINE = "LINE"
    APPLE_BUSINESS_CHAT = "APPLE_BUSINESS_CHAT"


class ConflictPolicy(StrEnum):
    """What to do with a group of rows that link several different persons."""

    QUARANTINE = "quarantine"
    KEEP_MOST_RECENT = "keep_most_recent"
    DROP_SHARED_IDENTIFIER = "drop_shared_identifier"


class SourceConfig(_Strict):
    """Where the audience rows come from.

    Attributes:
        connection: ``warehouse`` (the ledger's own warehouse) or the name of a configured
            source connection (``WarehouseResource.sources``); an unknown name fails the
            definitions load.
        table: ``schema.table`` to read (only the audience's columns are read); exclusive with
            ``query``.
        query: One read-only SELECT to run instead of reading a table; checked here against
            both dialects' rules (the engine is not known yet) and again, in the engine's own
            dialect, when it runs.
        row_id_column: Column that identifies an input row; row positions when absent.
    """

    connection: Column = LEDGER_CONNECTION
    table: TableName | None = None
    query: str | None = Field(default=None, min_length=1)
    row_id_column: Column | None = None

    @model_validator(mode="after")
    def _exactly_one_of_table_or_query(self) -> SourceConfig:
        if (self.table is None) == (self.query is None):
            raise ValueError("exactly one of 'table' or 'query' must be given")
        return self

    @field_validator("query")
    @classmethod
    def _query_is_one_select(cls, query: str | None) -> str | None:
        # The query may run with the credentials that also own the ledger tables: refuse
        # anything that is not a read-only SELECT now, whichever engine will run it.
        return None if query is None else check_select_query(query)


class IdentifyBy(_Strict):
    """The column holding ``identifyBy.identifier`` and its type.

    Attributes:
        column: Source column of the identifier.
        type: Spec identifier type; EMAIL and PHONE are normalized.
        sender: Sender or application id; the spec requires it for types other than
            EMAIL and PHONE.
    """

    column: Column
    type: IdentifierType
    sender: str | None = Field(default=None, min_length=1, max_length=255)

    @model_validator(mode="after")
    def _sender_when_required(self) -> IdentifyBy:
        needs_sender = self.type not in (IdentifierType.EMAIL, IdentifierType.PHONE)
        if needs_sender and self.sender is None:
            raise ValueError(f"'sender' is required for identifier type {self.type.value}")
        return self


class IdentityConfig(_Strict):
    """Which columns identify a person.

    Attributes:
        identify_by: The participant's ``identifyBy``.
        external_id: Column of ``person.externalId``; when given it is the person key.
        emails: Columns sent as ``contactInformation.email``.
        phones: Columns sent as ``contactInformation.phone``.
        default_region: Region used to read phone numbers written without a country code.
        region_column: Column holding a per-row region (ISO alpha-2), preferred when set.
    """

    identify_by: IdentifyBy
    external_id: Column | None = None
    emails: tuple[Column, ...] = ()
    phones: tuple[Column, ...] = ()
    default_region: RegionCode | None = None
    region_column: Column | None = None

    @model_validator(mode="after")
    def _region_for_phones(self) -> IdentityConfig:
        uses_phones = bool(self.phones) or self.identify_by.type is IdentifierType.PHONE
        if uses_phones and self.default_region is None and self.region_column is None:
            raise ValueError(
                "phone columns need 'default_region' and/or 'region_column' to read "
                "numbers written without a country code"
            )
        return self


class PersonConfig(_Strict):
    """Person attributes sent with the participant.

    Attributes:
        attributes: Spec attribute name (``firstName``, ``city``...) -> source column.
        custom_attributes: Custom attribute name -> source column.
        tags: Tags given to every person of the audience.
    """

    attributes: dict[str, Column] = Field(default_factory=dict)
    custom_attributes: dict[Annotated[str, Field(min_length=1, max_length=255)], Column] = Field(
        default_factory=dict
    )
    tags: tuple[Annotated[str, Field(min_length=1, max_length=255)], ...] = ()

    @model_validator(mode="after")
    def _known_attributes(self) -> PersonConfig:
        unknown = sorted(set(self.attributes) - PERSON_ATTRIBUTES)
        if unknown:
            raise ValueError(
                f"unknown person attribute(s) {unknown}; allowed: {sorted(PERSON_ATTRIBUTES)} "
                "(use custom_attributes for anything else)"
            )
        return self


class FlowConfig(_Strict):
    """The Moments flow the audience is added to."""

    campaign_id: int = Field(gt=0, lt=2**63)


class ConflictConfig(_Strict):
    """Identity conflict handling.

    Attributes:
        policy: ``quarantine`` (default), ``keep_most_recent`` or ``drop_shared_identifier``.
        recency_column: Column ordering rows by recency; required by ``keep_most_recent``,
            also used to pick the attributes of collapsed duplicates.
    """

    policy: ConflictPolicy = ConflictPolicy.QUARANTINE
    recency_column: Column | None = None

    @model_validator(mode="after")
    def _recency_when_needed(self) -> ConflictConfig:
        if self.policy is ConflictPolicy.KEEP_MOST_RECENT and self.recency_column is None:
            raise ValueError("policy 'keep_most_recent' needs 'recency_column'")
        return self


class ReportConfig(_Strict):
    """How long to wait for Infobip's report and how many rejections are acceptable."""

    deadline_s: float = Field(default=600.0, gt=0)
    max_rejection_rate: float = Field(default=0.05, ge=0.0, le=1.0)


class AudienceConfig(_Strict):
    """One audience: a warehouse source mapped onto Moments flow participants.

    Attributes:
        name: Identifier-safe audience name (used for asset names and ledger keys).
        description: Free text for humans.
        source: Where rows are read from.
        identity: Identifier columns.
        person: Person attributes.
        variables: Flow variable name -> source column.
        flow: Target flow.
        conflicts: Identity conflict policy.
        report: Report deadline and rejection budget.
    """

    name: Column
    description: str = ""
    source: SourceConfig
    identity: IdentityConfig
    person: PersonConfig = Field(default_factory=PersonConfig)
    variables: dict[Annotated[str, Field(min_length=1, max_length=255)], Column] = Field(
        default_factory=dict
    )
    flow: FlowConfig
    conflicts: ConflictConfig = Field(default_factory=ConflictConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)

    def source_columns(self) -> list[str]:
        """Every source column the audience reads, in a stable order without repeats."""
        identity = self.identity
        candidates: list[str | None] = [
            self.source.row_id_column,
            identity.identify_by.column,
            identity.external_id,
            *identity.emails,
            *identity.phones,
            identity.region_column,
            *self.person.attributes.values(),
            *self.person.custom_attributes.values(),
            *self.variables.values(),
            self.conflicts.recency_column,
        ]
        return list(dict.fromkeys(c for c in candidates if c is not None))
