"""The Forms API routes of the emulator: list, get, view counter and submission.

``form_routes()`` is mounted by ``app.create_app`` behind the request gate (faults, auth,
recording, journaling of form mutations), so handlers only apply the Forms rules to
``request.app.state.emulator``: ``forms`` (id -> ApiFormDto dict), ``form_views`` (id -> int)
and ``form_submissions`` (JSON-ready dicts, appended in order).

Readings chosen where the spec is silent (each also noted where it is applied):

- ``limit`` above 100 answers 400 BAD_REQUEST; values are not clamped.
- Submitted keys that match no ``fieldId`` are ignored (kept on the submission record).
- ``resubmitEnabled: false``: a second submission carrying an email, phone or externalId
  already used by an accepted submission of the same form answers 400 BAD_REQUEST and changes
  nothing. Without such an identifier a submission cannot be attributed and is accepted.
- A body that is neither JSON, urlencoded nor multipart answers 400 (the spec documents no 415).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .errors import api_exception, general_error, json_response
from .form_validation import FormConfigError, PersonUpdate, person_update, validate_submission
from .people import Identifier
from .state import Emulator

__all__ = ["FORM_STATUSES", "FORM_TYPES", "MAX_LIMIT", "form_routes"]

MAX_LIMIT = 100
DEFAULT_LIMIT = 25
_INT32_MAX = 2**31 - 1
# Query enum of get-forms' formType (the FormType schema also lists CSAT and WA_FLOW, which the
# parameter does not accept).
FORM_TYPES = frozenset({"OPT_IN", "OPT_OUT", "FACEBOOK", "LIVECHAT", "APPLE"})
FORM_STATUSES = frozenset({"ACTIVE", "DISABLED", "DRAFT"})
_INTEGER = re.compile(r"[+-]?[0-9]+")
_SOURCE_HEADER = "ib-submission-source"
_CAMPAIGN_HEADER = "ib-submission-form-campaign"
_JSON_TYPE = re.compile(r"application/(?:[\w.+-]+\+)?json", re.IGNORECASE)
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def form_routes() -> list[BaseRoute]:
    """Return the routes of the four Forms operations of the spec."""
    return [
        Route("/forms/1/forms", list_forms, methods=["GET"]),
        Route("/forms/1/forms/{id}", get_form, methods=["GET"]),
        Route("/forms/1/forms/{id}/views", increment_view_count, methods=["POST"]),
        Route("/forms/1/forms/{id}/data", submit_form_data, methods=["POST"]),
    ]


def _emulator(request: Request) -> Emulator:
    emulator: Emulator = request.app.state.emulator
    return emulator


def _not_found() -> Response:
    return api_exception(404, "NOT_FOUND", "Form is not found")


def _bad_request(validation_errors: Mapping[str, list[str]] | None = None) -> Response:
    details: dict[str, Any] = {"messageId": "BAD_REQUEST", "text": "Bad request"}
    if validation_errors:
        # ApiRequestErrorDetails.validationErrors: field -> messages.
        details["validationErrors"] = dict(validation_errors)
    return json_response({"requestError": {"serviceException": details}}, 400)


def _status_ok() -> Response:
    return json_response({"status": "OK"})


# -- get-forms --------------------------------------------------------------------------------


def _int_param(raw: str | None, name: str, default: int, errors: dict[str, list[str]]) -> int:
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw.strip()) or abs(int(raw)) > _INT32_MAX:
        errors[name] = ["must be an integer"]
        return default
    return int(raw)


def _created_key(form: Mapping[str, Any]) -> float:
    try:
        return datetime.strptime(str(form.get("createdAt")), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    except ValueError:
        return float("-inf")


async def list_forms(request: Request) -> Response:
    """get-forms: a page of forms, newest first, filtered by type and status."""
    query = request.query_params
    errors: dict[str, list[str]] = {}
    offset = _int_param(query.get("offset"), "offset", 0, errors)
    limit = _int_param(query.get("limit"), "limit", DEFAULT_LIMIT, errors)
    if "offset" not in errors and offset < 0:
        errors["offset"] = ["must be greater than or equal to 0"]
    # The spec says "Maximum value is 100" and documents a 400 for get-forms, whose only inputs
    # are these four query parameters: a bean-validation style @Max(100) answering 400 is the
    # most plausible reading, so a larger limit is refused rather than silently clamped.
    if "limit" not in errors and not 1 <= limit <= MAX_LIMIT:
        errors["limit"] = [f"must be between 1 and {MAX_LIMIT}"]
    form_type = query.get("formType")
    if form_type is not None and form_type not in FORM_TYPES:
        errors["formType"] = [f"must be one of {sorted(FORM_TYPES)}"]
    form_status = query.get("formStatus")
    if form_status is not None and form_status not in FORM_STATUSES:
        errors["formStatus"] = [f"must be one of {sorted(FORM_STATUSES)}"]
    if errors:
        return _bad_request(errors)
    forms = [
        form
        for form in _emulator(request).forms.values()
        if (form_type is None or form.get("formType") == form_type)
        and (form_status is None or form.get("formStatus") == form_status)
    ]
    # Newest first, as the spec's list example orders its two forms.
    forms.sort(key=lambda form: (-_created_key(form), str(form.get("id"))))
    page = forms[offset : offset + limit]
    return json_response({"forms": page, "offset": offset, "limit": limit, "total": len(forms)})


# -- get-form and increment-view-count --------------------------------------------------------


async def get_form(request: Request) -> Response:
    """get-form: one form by id, whatever its status."""
    form = _emulator(request).forms.get(request.path_params["id"])
    return json_response(form) if form is not None else _not_found()


async def increment_view_count(request: Request) -> Response:
    """increment-view-count: add one view to the form's counter."""
    emulator = _emulator(request)
    form_id = request.path_params["id"]
    if form_id not in emulator.forms:
        return _not_found()
    emulator.form_views[form_id] = emulator.form_views.get(form_id, 0) + 1
    return _status_ok()


# -- submit-form-data -------------------------------------------------------------------------


class _UnreadableBody(Exception):
    def __init__(self, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__("unreadable form body")
        self.errors = errors


async def _read_fields(request: Request) -> tuple[dict[str, Any], str]:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if _JSON_TYPE.fullmatch(media_type):
        try:
            data = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise _UnreadableBody from None
        if not isinstance(data, dict):
            raise _UnreadableBody({"body": ["must be a JSON object of field values"]})
        return data, media_type
    if media_type in _FORM_TYPES:
        form = await request.form()
        fields: dict[str, Any] = {}
        for key in form:
            values = form.getlist(key)
            if any(isinstance(value, UploadFile) for value in values):
                raise _UnreadableBody({key: ["file uploads are not accepted"]})
            fields[key] = values[0] if len(values) == 1 else list(values)
        return fields, media_type
    # The spec documents no 415 for this operation; its 400 is the documented refusal.
    supported = ", ".join(("application/json", *_FORM_TYPES))
    raise _UnreadableBody({"Content-Type": [f"must be one of {supported}"]})


def _identifiers(update: PersonUpdate) -> list[Identifier]:
    return [Identifier.of(kind, value) for kind, value in update.identifiers]


def _already_submitted(emulator: Emulator, form_id: str, identifiers: list[Identifier]) -> bool:
    wanted = {(identifier.kind, identifier.value) for identifier in identifiers}
    return any(
        submission["formId"] == form_id
        and wanted.intersection(tuple(pair) for pair in submission.get("identifiers", []))
        for submission in emulator.form_submissions
    )


async def submit_form_data(request: Request) -> Response:
    """submit-form-data: validate, update People through ``personField``, record."""
    emulator = _emulator(request)
    form_id = request.path_params["id"]
    form = emulator.forms.get(form_id)
    if form is None:
        return _not_found()
    if form.get("formStatus") != "ACTIVE":
        return api_exception(403, "FORBIDDEN", "Form is not submittable using the API")
    try:
        data, media_type = await _read_fields(request)
    except _UnreadableBody as exc:
        return _bad_request(exc.errors)
    try:
        result = validate_submission(form, data)
    except FormConfigError:
        # The form's own pattern is broken: a configuration fault of the account, not the caller.
        return general_error(500)
    if not result.ok:
        return _bad_request(result.errors)
    update = person_update(form, result.values)
    identifiers = _identifiers(update)
    if not form.get("resubmitEnabled", True) and _already_submitted(emulator, form_id, identifiers):
        return _bad_request({"resubmitEnabled": ["this form was already submitted by this person"]})
    submission_id = str(uuid.uuid4())
    profile_id = None
    if identifiers:
        profile_id = emulator.people.upsert(
            identifiers, update.attributes, origin="FORMS", operation_id=submission_id
        )
    emulator.form_submissions.append(
        {
            "id": submission_id,
            "formId": form_id,
            "fields": result.values,
            "ignoredFields": result.ignored_fields,
            "source": request.headers.get(_SOURCE_HEADER),
            "formCampaign": request.headers.get(_CAMPAIGN_HEADER),
            "contentType": media_type,
            "time": emulator.now(),
            "profileId": profile_id,
            "identifiers": [[identifier.kind, identifier.value] for identifier in identifiers],
        }
    )
    return _status_ok()
