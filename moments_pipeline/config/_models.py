"""Pydantic v2 models of an audience definition (one YAML file per audience).

Every column and table name is validated as a plain SQL identifier here, so nothing that reaches
the warehouse layer can carry SQL. Unknown fields are refused (``extra="forbid"``) so a typo in a
YAML key is an error, not a silently ignored setting.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from moments_pipeline.config._catalog import CronExpression, Owner, Tags
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


# -- partitions and sensors (issue 10) -------------------------------------------------------

#: Column the pipeline adds to a partitioned audience's stored tables (snapshot, participants,
#: quarantine, dropped values): the partition key of each row. Reserved: no audience may read a
#: source column of that name.
PARTITION_COLUMN = "moments_partition"

_TIMEZONE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$")


def _check_timezone(value: str) -> str:
    # An IANA name only (it is rendered into the warehouse's day boundaries): the pattern keeps
    # quotes and spaces out, zoneinfo proves it exists.
    if not _TIMEZONE_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not an IANA time zone name (e.g. UTC, Europe/Zurich)")
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (e.g. UTC, Europe/Zurich)") from None
    return value


class PartitionConfig(_Strict):
    """Daily partitions: each partition is the source rows of one day of ``date_column``.

    Attributes:
        date_column: DATE, TIMESTAMP or TIMESTAMPTZ column of the source; a row belongs to the
            day its value falls on in ``timezone`` (a TIMESTAMP without zone is read as wall
            time of ``timezone``).
        start_date: First day (partition) of the audience.
        timezone: IANA name of the time zone days are cut in.
    """

    date_column: Column
    start_date: date
    timezone: Annotated[str, AfterValidator(_check_timezone)] = "UTC"


class SensorConfig(_Strict):
    """Opt-in warehouse sensor: a run per partition whose rows changed.

    Attributes:
        watermark_column: Column whose maximum changes when rows change (``updated_at``); the
            fingerprint of a partition is its row count plus this maximum.
        minimum_interval_s: Seconds between two evaluations (each is one aggregate query).
    """

    watermark_column: Column
    minimum_interval_s: int = Field(default=60, ge=5, le=86_400)


# -- schedule, owners and tags: how an audience shows in Dagster (issue 10) ------------------


class ScheduleConfig(_Strict):
    """When the audience is synced on its own (a Dagster schedule of the audience's assets).

    Attributes:
        cron: Five-field cron expression or macro (``0 6 * * *``, ``@daily``).
        timezone: IANA time zone the cron is read in (default UTC).
        default_status: ``STOPPED`` (default: an operator turns it on in the UI, so a new
            deployment never starts sending by itself) or ``RUNNING``.
    """

    cron: CronExpression
    timezone: Annotated[str, AfterValidator(_check_timezone)] = "UTC"
    default_status: Literal["RUNNING", "STOPPED"] = "STOPPED"


# -- membership (mirror mode) and its removal guard (issue 11) ---------------------------------


class Membership(StrEnum):
    """What the audience's rows mean for the flow."""

    ADD = "add"
    """Rows are added; nobody is ever removed (the default)."""
    MIRROR = "mirror"
    """The flow mirrors the rows: people this audience added who left the rows are removed."""


class RemovalGuardConfig(_Strict):
    """Limits of one run's removals (a mirror audience); the guard check refuses beyond them.

    Attributes:
        max_removal_share: Removals may be at most this share of the people this audience has
            in the flow (default 10 %).
        max_removals: Absolute cap on one run's removals (none by default).
    """

    max_removal_share: float = Field(default=0.10, ge=0.0, le=1.0)
    max_removals: int | None = Field(default=None, ge=0)


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
        partition: Daily partitions by a date column (None: one unpartitioned audience).
        sensor: Warehouse sensor requesting runs when the source changes (None: no sensor).
        membership: ``add`` (default) or ``mirror`` (people who leave the rows leave the flow).
        removals: The removal guard's limits (mirror audiences).
        schedule: Cron and timezone of a scheduled sync (None: synced when launched).
        owners: Dagster owners of the audience's assets (e-mail or ``team:<name>``).
        tags: Dagster tags of the audience's assets (strict keys and values).
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
    partition: PartitionConfig | None = None
    sensor: SensorConfig | None = None
    membership: Membership = Membership.ADD
    removals: RemovalGuardConfig = Field(default_factory=RemovalGuardConfig)
    # How the audience shows in Dagster (rules in config/_catalog.py).
    schedule: ScheduleConfig | None = None
    owners: tuple[Owner, ...] = ()
    tags: Tags = Field(default_factory=dict)

    @model_validator(mode="after")
    def _partition_column_is_free(self) -> AudienceConfig:
        # The stored tables carry the partition key in this column: a source column of that
        # name would be overwritten.
        if self.partition is not None and PARTITION_COLUMN in self.source_columns():
            raise ValueError(
                f"column {PARTITION_COLUMN!r} is reserved for the partition key of partitioned "
                "audiences; rename it in the source (e.g. with a query)"
            )
        return self

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
