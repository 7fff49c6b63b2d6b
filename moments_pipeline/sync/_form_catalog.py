"""The form catalog: every form (get-forms, paged), each fetched whole (get-form), as tables.

``read_form_catalog`` pages through get-forms (100 per page, the spec's maximum) until a page
comes back short or ``total`` is reached, then fetches each form by id (the list may be a
summary; get-form is the definition submissions are validated against). ``catalog_frames``
flattens them into the two warehouse tables, ``catalog_changes`` compares two catalogs. Reads
only: nothing here can change anything on Infobip. Never logs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson
import pandas as pd

from moments_pipeline.infobip import MomentsClient

PAGE = 100
FORMS_COLUMNS = [
    "form_id",
    "name",
    "form_type",
    "form_status",
    "created_at",
    "updated_at",
    "resubmit_enabled",
    "action_type",
    "action_value",
    "elements",
    "definition_hash",
]
FIELDS_COLUMNS = [
    "form_id",
    "position",
    "field_id",
    "component",
    "person_field",
    "label",
    "is_required",
    "is_hidden",
    "validation_rules",
    "options",
]


async def read_form_catalog(client: MomentsClient, *, page: int = PAGE) -> list[dict[str, Any]]:
    """Every form of the account, each as get-form returns it (spec JSON, camelCase)."""
    ids: list[str] = []
    offset = 0
    while True:
        listing = await client.get_forms(offset=offset, limit=page)
        ids.extend(form.id for form in listing.forms)
        offset += len(listing.forms)
        if len(listing.forms) < page or (listing.total is not None and offset >= listing.total):
            break
    forms = []
    for form_id in dict.fromkeys(ids):
        form = await client.get_form(form_id)
        forms.append(form.model_dump(by_alias=True, mode="json"))
    return forms


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def catalog_frames(forms: Sequence[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(forms table, form fields table) of a catalog; JSON columns as text."""
    form_rows, field_rows = [], []
    for form in forms:
        action = form.get("actionAfterSubmission") or {}
        elements = form.get("elements") or []
        form_rows.append(
            {
                "form_id": form["id"],
                "name": form.get("name"),
                "form_type": form.get("formType"),
                "form_status": form.get("formStatus"),
                "created_at": form.get("createdAt"),
                "updated_at": form.get("updatedAt"),
                "resubmit_enabled": bool(form.get("resubmitEnabled")),
                "action_type": action.get("type"),
                "action_value": action.get("value"),
                "elements": len(elements),
                "definition_hash": hashlib.sha256((_json(form) or "").encode()).hexdigest()[:16],
            }
        )
        for position, element in enumerate(elements):
            field_rows.append(
                {
                    "form_id": form["id"],
                    "position": position,
                    "field_id": element.get("fieldId"),
                    "component": element.get("component"),
                    "person_field": element.get("personField"),
                    "label": element.get("label"),
                    "is_required": bool(element.get("isRequired")),
                    "is_hidden": bool(element.get("isHidden")),
                    "validation_rules": _json(element.get("validationRules")),
                    "options": _json(element.get("options")),
                }
            )
    return (
        pd.DataFrame(form_rows, columns=FORMS_COLUMNS),
        pd.DataFrame(field_rows, columns=FIELDS_COLUMNS),
    )


def catalog_changes(previous: pd.DataFrame | None, current: pd.DataFrame) -> dict[str, list[str]]:
    """Form ids ``added``, ``removed`` and ``changed`` (definition hash) since ``previous``."""
    before = (
        {}
        if previous is None
        else dict(zip(previous["form_id"], previous["definition_hash"], strict=True))
    )
    now = dict(zip(current["form_id"], current["definition_hash"], strict=True))
    return {
        "added": sorted(set(now) - set(before)),
        "removed": sorted(set(before) - set(now)),
        "changed": sorted(k for k in set(now) & set(before) if now[k] != before[k]),
    }
