"""Pydantic models of the Moments API, named after the spec's schemas.

Fields use the spec's camelCase names as aliases and accept snake_case too. Response models
ignore unknown fields (the live service adds some); request models forbid them (a typo in a
participant must not be silently dropped). Live quirks accepted, as documented in
``shared/infobip/README.md``:

- ``errorCode`` arrives as a string (``"40401"``) though the schema says integer: kept as str.
- timestamps arrive as ``2022-07-11T06:38:12.757+0000``: pydantic parses the colon-less offset.
- ``ErrorStatusReason``: the enum says ``REJECTED_PERSON_IN_FLOW``, the description says
  ``REJECTED_PERSON_ALREADY_IN_FLOW``; we read the enum as canonical and map the other spelling
  onto it. Reasons the spec does not list are kept as plain strings rather than failing a report.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = [
    "ActionAfterSubmission",
    "AddFlowParticipantResult",
    "AddFlowParticipantStatus",
    "AddFlowParticipantsRequest",
    "AddFlowParticipantsResponse",
    "ApiFormDto",
    "ApiFormListDto",
    "ApiStatusResponse",
    "ComponentType",
    "ErrorStatusReason",
    "ExceptionResponse",
    "FlowParticipant",
    "FlowParticipantsReportResponse",
    "FormElementDto",
    "FormElementOptionDto",
    "FormStatus",
    "FormType",
    "IamEmailContact",
    "IamPersonContactsV2",
    "IamPersonV2",
    "IamPhoneContact",
    "ValidationRules",
    "WebhookPersonUniqueField",
    "WebhookPersonUniqueFieldType",
]


# Enum values the spec lists become members; values it does not list stay strings.
_KNOWN_FIRST = Field(union_mode="left_to_right")


class _RequestModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class _ResponseModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


# --- flows -------------------------------------------------------------------------------------


class WebhookPersonUniqueFieldType(enum.StrEnum):
    """Type of the participant's unique identifier."""

    EMAIL = "EMAIL"
    PHONE = "PHONE"
    FACEBOOK = "FACEBOOK"
    LINE = "LINE"
    APPLE_BUSINESS_CHAT = "APPLE_BUSINESS_CHAT"


class AddFlowParticipantStatus(enum.StrEnum):
    """Processing status of one participant of an add operation."""

    PENDING = "PENDING"
    REJECTED = "REJECTED"
    ACCEPTED = "ACCEPTED"


class ErrorStatusReason(enum.StrEnum):
    """Why a participant was REJECTED (enum of the spec, see the module docstring)."""

    REJECTED_INVALID_CONTACT = "REJECTED_INVALID_CONTACT"
    REJECTED_ATTRIBUTE_MISSED = "REJECTED_ATTRIBUTE_MISSED"
    REJECTED_PERSON_IN_FLOW = "REJECTED_PERSON_IN_FLOW"
    REJECTED_PERSON_NOT_ALLOWED_TO_REENTER = "REJECTED_PERSON_NOT_ALLOWED_TO_REENTER"
    REJECTED_FLOW_ERROR_UNKNOWN = "REJECTED_FLOW_ERROR_UNKNOWN"
    REJECTED_NOT_ENOUGH_CREDITS = "REJECTED_NOT_ENOUGH_CREDITS"
    REJECTED_CDP_ERROR_UNKNOWN = "REJECTED_CDP_ERROR_UNKNOWN"

    @classmethod
    def _missing_(cls, value: object) -> ErrorStatusReason | None:
        # The spec's description spells this reason differently from its enum.
        if value == "REJECTED_PERSON_ALREADY_IN_FLOW":
            return cls.REJECTED_PERSON_IN_FLOW
        return None


def _reason_or_text(value: object) -> object:
    if isinstance(value, str):
        try:
            return ErrorStatusReason(value)
        except ValueError:
            return value
    return value


class WebhookPersonUniqueField(_RequestModel):
    """Unique identifier of a participant (``identifyBy``)."""

    identifier: str
    type: WebhookPersonUniqueFieldType
    sender: str | None = None


class IamPhoneContact(_RequestModel):
    """One phone number, international digits (the spec's examples omit the ``+``)."""

    number: str


class IamEmailContact(_RequestModel):
    """One email address."""

    address: str


class IamPersonContactsV2(_RequestModel):
    """Writable contact information of a person."""

    phone: list[IamPhoneContact] | None = None
    email: list[IamEmailContact] | None = None


class IamPersonV2(_RequestModel):
    """Writable person attributes sent with a participant (read-only fields omitted)."""

    external_id: str | None = Field(default=None, max_length=256)
    first_name: str | None = None
    last_name: str | None = None
    middle_name: str | None = None
    type: str | None = None
    address: str | None = None
    city: str | None = None
    country: str | None = None
    gender: str | None = None
    birth_date: str | None = None
    preferred_language: str | None = None
    profile_picture: str | None = None
    tags: list[str] | None = None
    custom_attributes: dict[str, Any] | None = None
    contact_information: IamPersonContactsV2 | None = None


class FlowParticipant(_RequestModel):
    """A participant to add to a flow."""

    identify_by: WebhookPersonUniqueField
    variables: dict[str, Any] | None = None
    person: IamPersonV2 | None = None


class AddFlowParticipantsRequest(_RequestModel):
    """Body of add-flow-participants (1..1000 participants; the spec's maxLength means items)."""

    participants: list[FlowParticipant] = Field(min_length=1, max_length=1000)
    notify_url: str | None = Field(default=None, max_length=1000)
    callback_data: str | None = Field(default=None, max_length=2000)


class AddFlowParticipantsResponse(_ResponseModel):
    """Answer of add-flow-participants: the asynchronous operation's id."""

    operation_id: str


class _ResultIdentifier(_ResponseModel):
    identifier: str
    type: Annotated[WebhookPersonUniqueFieldType | str, _KNOWN_FIRST]
    sender: str | None = None


class AddFlowParticipantResult(_ResponseModel):
    """Outcome for one participant of an operation."""

    identify_by: _ResultIdentifier
    status: AddFlowParticipantStatus
    error_reason: Annotated[ErrorStatusReason | str | None, BeforeValidator(_reason_or_text)] = None


class FlowParticipantsReportResponse(_ResponseModel):
    """Report of an add operation (polled, or POSTed to ``notifyUrl``)."""

    operation_id: str
    campaign_id: int
    callback_data: str | None = None
    participants: list[AddFlowParticipantResult]

    @property
    def pending(self) -> int:
        """Number of participants still PENDING."""
        return sum(1 for p in self.participants if p.status is AddFlowParticipantStatus.PENDING)

    @property
    def is_complete(self) -> bool:
        """True when no participant is PENDING."""
        return self.pending == 0


def _code_as_text(value: object) -> object:
    return str(value) if isinstance(value, int) else value


class ExceptionResponse(_ResponseModel):
    """The flow endpoints' ``{"errorCode", "errorMessage"}`` error body."""

    error_code: Annotated[str | None, BeforeValidator(_code_as_text)] = None
    error_message: str | None = None


# --- forms -------------------------------------------------------------------------------------


class FormType(enum.StrEnum):
    """Form type."""

    OPT_IN = "OPT_IN"
    OPT_OUT = "OPT_OUT"
    FACEBOOK = "FACEBOOK"
    LIVECHAT = "LIVECHAT"
    APPLE = "APPLE"
    CSAT = "CSAT"
    WA_FLOW = "WA_FLOW"


class FormStatus(enum.StrEnum):
    """Form status."""

    ACTIVE = "ACTIVE"
    DISABLED = "DISABLED"
    DRAFT = "DRAFT"


class ComponentType(enum.StrEnum):
    """Kind of a form element."""

    TEXT = "TEXT"
    TEXTAREA = "TEXTAREA"
    NUMBER = "NUMBER"
    DROPDOWN = "DROPDOWN"
    CHECKBOX = "CHECKBOX"
    CHECKBOX_GROUP = "CHECKBOX_GROUP"
    RADIOBUTTON = "RADIOBUTTON"
    DATE = "DATE"
    DATETIME = "DATETIME"
    EMAIL = "EMAIL"
    MSISDN = "MSISDN"
    SUBMIT_BUTTON = "SUBMIT_BUTTON"
    TITLE = "TITLE"
    DESCRIPTION = "DESCRIPTION"
    APPLE_SPLASH = "APPLE_SPLASH"
    APPLE_BOOLEAN = "APPLE_BOOLEAN"
    WHATSAPP_SCREEN = "WHATSAPP_SCREEN"
    WHATSAPP_HEADING = "WHATSAPP_HEADING"
    WHATSAPP_SUBHEADING = "WHATSAPP_SUBHEADING"
    WHATSAPP_BODY = "WHATSAPP_BODY"


class ValidationRules(_ResponseModel):
    """Validation rules of a form element."""

    date_pattern: str | None = None
    max_length: int | None = None
    max_value: str | None = None
    min_value: str | None = None
    pattern: str | None = None
    sample: str | None = None
    forbidden_symbols: list[str] | None = None


class FormElementOptionDto(_ResponseModel):
    """One option of a dropdown, radio or checkbox group."""

    name: str
    value: str
    additional_configuration: dict[str, str] | None = None


class FormElementDto(_ResponseModel):
    """One field of a form."""

    component: Annotated[ComponentType | str, _KNOWN_FIRST]
    field_id: str | None = None
    person_field: str | None = None
    label: str | None = None
    is_required: bool | None = None
    is_hidden: bool | None = None
    additional_configuration: dict[str, str] | None = None
    text_content: str | None = None
    options: list[FormElementOptionDto] | None = None
    validation_rules: ValidationRules | None = None
    placeholder: str | None = None
    checkbox_text: str | None = None
    validation_messages: dict[str, str] | None = None


class ActionAfterSubmission(_ResponseModel):
    """What the form does after a submission (REDIRECT or MESSAGE)."""

    type: str
    value: str


class ApiFormDto(_ResponseModel):
    """A form."""

    id: str
    name: str
    elements: list[FormElementDto]
    created_at: datetime | None = None
    updated_at: datetime | None = None
    action_after_submission: ActionAfterSubmission | None = None
    resubmit_enabled: bool
    form_type: Annotated[FormType | str, _KNOWN_FIRST]
    form_status: Annotated[FormStatus | str, _KNOWN_FIRST]


class ApiFormListDto(_ResponseModel):
    """A page of forms."""

    forms: list[ApiFormDto]
    offset: int | None = None
    limit: int | None = None
    total: int | None = None


class ApiStatusResponse(_ResponseModel):
    """``{"status": "OK"}`` of the forms write operations."""

    status: str
