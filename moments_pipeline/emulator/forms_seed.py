"""The forms the emulator starts with, and helpers to complete forms given in configuration.

``default_forms()`` returns the spec's two example forms exactly as the spec shows them (the
get-form example ``f23f0f7c-...`` with its elements, validation rules and timestamps, and the
list example's ``7370b24c-...``). Timestamps in form DTOs use the examples' format
``2022-07-11T06:38:12.757+0000`` (milliseconds, offset without a colon).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .form_validation import EMAIL_PATTERN

__all__ = [
    "NAME_FORBIDDEN_SYMBOLS",
    "company_newsletter_form",
    "complete_form",
    "default_forms",
    "email_only_form",
    "format_form_timestamp",
]

#: Symbols the example's name fields forbid (``validationRules.forbiddenSymbols``).
NAME_FORBIDDEN_SYMBOLS = [
    "^", "&", "<", ">", '"', "/", "\\", "\n", "\r", ":", "(", ")",
    "{", "}", "=", ";", "#", "|", "+", "%", "*", "?", "[", "]",
]  # fmt: skip


def format_form_timestamp(moment: datetime) -> str:
    """Format a moment as the Forms API does: ``2022-07-11T06:38:12.757+0000``.

    Args:
        moment: A timezone-aware datetime (naive values are taken as UTC).

    Returns:
        Milliseconds precision, numeric offset without a colon.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (
        moment.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{moment.microsecond // 1000:03d}"
        + (moment.strftime("%z"))
    )


def _text(field_id: str, label: str, *, person_field: str | None, max_length: int) -> dict:
    element: dict[str, Any] = {"component": "TEXT", "fieldId": field_id}
    if person_field:
        element["personField"] = person_field
    element.update(
        {
            "label": label,
            "isRequired": False,
            "isHidden": False,
            "additionalConfiguration": {},
            "validationRules": {"maxLength": max_length, "sample": "Lorem ipsum"},
            "placeholder": label,
        }
    )
    return element


def _name(field_id: str, person_field: str, label: str) -> dict:
    element = _text(field_id, label, person_field=person_field, max_length=255)
    element["validationRules"] = {
        "maxLength": 255,
        "sample": "James",
        "forbiddenSymbols": list(NAME_FORBIDDEN_SYMBOLS),
    }
    return element


def _email(label: str, *, required: bool) -> dict:
    return {
        "component": "EMAIL",
        "fieldId": "email",
        "personField": "email",
        "label": label,
        "isRequired": required,
        "isHidden": False,
        "additionalConfiguration": {},
        "validationRules": {
            "maxLength": 1000,
            "pattern": EMAIL_PATTERN,
            "sample": "email@example.com",
        },
        "placeholder": "Email",
    }


_SUBMIT = {"component": "SUBMIT_BUTTON", "label": "Submit"}


def company_newsletter_form() -> dict[str, Any]:
    """The spec's get-form example ``f23f0f7c-9898-4feb-8f21-5afe2c29db7e``, verbatim."""
    business_needs = _text("business_needs", "Business Needs", person_field=None, max_length=3000)
    business_needs["component"] = "TEXTAREA"
    business_needs["validationRules"]["sample"] = "Lorem ipsum ..."
    business_needs["placeholder"] = ""
    return {
        "id": "f23f0f7c-9898-4feb-8f21-5afe2c29db7e",
        "name": "Test Form",
        "elements": [
            _name("first_name", "firstName", "First Name"),
            _name("last_name", "lastName", "Last Name"),
            _text(
                "company",
                "Company",
                person_field="267ce64a-1a26-4326-9036-6384696f39c8",
                max_length=1000,
            ),
            _text("country", "Country", person_field="country", max_length=1000),
            _email("Email Address", required=True),
            business_needs,
            _text("offer_id", "OfferId", person_field=None, max_length=1000),
            _text("plan_id", "PlanId", person_field=None, max_length=1000),
            _text("subscription_id", "SubscriptionId", person_field=None, max_length=1000),
            _text("Tenant_id", "TenantId", person_field=None, max_length=1000),
            dict(_SUBMIT),
        ],
        "createdAt": "2022-07-11T06:38:12.757+0000",
        "updatedAt": "2022-07-11T06:45:12.826+0000",
        "resubmitEnabled": True,
        "formType": "OPT_IN",
        "formStatus": "ACTIVE",
    }


def email_only_form() -> dict[str, Any]:
    """The list example's second form ``7370b24c-9788-4a52-a6a4-047cecbe2df2``, verbatim."""
    return {
        "id": "7370b24c-9788-4a52-a6a4-047cecbe2df2",
        "name": "test",
        "elements": [_email("Email", required=False), dict(_SUBMIT)],
        "createdAt": "2022-06-15T13:21:38.195+0000",
        "updatedAt": "2022-06-15T13:21:46.286+0000",
        "resubmitEnabled": True,
        "formType": "OPT_IN",
        "formStatus": "ACTIVE",
    }


def default_forms() -> list[dict[str, Any]]:
    """Return fresh copies of the forms every emulator starts with (the spec's examples)."""
    return [company_newsletter_form(), email_only_form()]


def complete_form(form: Mapping[str, Any], *, now: datetime) -> dict[str, Any]:
    """Fill the required ``ApiFormDto`` fields a configured form may leave out.

    Defaults: ``name`` = id, no elements, ``resubmitEnabled`` true, ``formType`` OPT_IN,
    ``formStatus`` ACTIVE, ``createdAt``/``updatedAt`` = ``now`` in the Forms API format.

    Args:
        form: A form dict with at least ``id``.
        now: The emulator clock's current time.

    Returns:
        A new dict; the input is not modified.

    Raises:
        ValueError: ``id`` is missing or blank.
    """
    if not str(form.get("id") or "").strip():
        raise ValueError("a configured form needs a non-blank 'id'")
    completed = copy.deepcopy(dict(form))
    stamp = format_form_timestamp(now)
    completed.setdefault("name", completed["id"])
    completed.setdefault("elements", [])
    completed.setdefault("createdAt", stamp)
    completed.setdefault("updatedAt", completed["createdAt"])
    completed.setdefault("resubmitEnabled", True)
    completed.setdefault("formType", "OPT_IN")
    completed.setdefault("formStatus", "ACTIVE")
    return completed
