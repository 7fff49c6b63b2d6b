"""The client's error tree and the parser of Infobip's error bodies.

Every error carries ``transient`` (a retry later may succeed) and whatever the API said
(``status_code``, ``message_id`` or ``error_code``, ``error_text``). Messages are built from the
operation name and the server's text, scrubbed of the API key: no message ever holds it.

Infobip answers errors in three shapes, all read here:

- ``{"requestError": {"serviceException": {"messageId", "text", "validationErrors"?}}}``
- ``{"errorCode", "errorMessage"}`` (``errorCode`` a string on the live service, an int in the
  schema: both accepted, kept as a string)
- a problem object ``{"type", "title", "status", "detail", "instance"}``
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

__all__ = [
    "AmbiguousSendError",
    "AuthError",
    "MomentsError",
    "NotFoundError",
    "RateLimitedError",
    "ReportDeadlineExceeded",
    "ServerError",
    "TransportError",
    "ValidationError",
    "error_from_response",
    "error_summary",
    "is_flow_unavailable",
]

FLOW_NOT_FOUND = "40401"
"""The spec's errorCode for "Could not find active flow" (missing or inactive flow)."""


class MomentsError(Exception):
    """Root of every error the client raises.

    Attributes:
        transient: True if the same call may succeed later; False if retrying is pointless
            or (for :class:`AmbiguousSendError`) unsafe without reconciliation.
        status_code: HTTP status, if a response arrived.
        message_id: ``serviceException.messageId`` (e.g. ``TOO_MANY_REQUESTS``), if any.
        error_code: ``errorCode`` as a string (e.g. ``"40401"``), if any.
        error_text: The server's human text (``text`` / ``errorMessage`` / ``detail``).
        validation_errors: ``serviceException.validationErrors``, if any.
        operation: The spec operationId of the failed call.
    """

    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        message_id: str | None = None,
        error_code: str | None = None,
        error_text: str | None = None,
        validation_errors: Mapping[str, list[str]] | None = None,
        operation: str | None = None,
        transient: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.message_id = message_id
        self.error_code = error_code
        self.error_text = error_text
        self.validation_errors = dict(validation_errors) if validation_errors else {}
        self.operation = operation
        if transient is not None:
            self.transient = transient

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status_code={self.status_code!r}, "
            f"message_id={self.message_id!r}, error_code={self.error_code!r})"
        )


class AuthError(MomentsError):
    """401 or 403: the key is wrong, revoked or lacks the scope. Terminal."""


class ValidationError(MomentsError):
    """400: the request was refused as invalid (e.g. errorCode 40006). Terminal."""


class NotFoundError(MomentsError):
    """404: flow, form, person or report not found. Terminal."""


class RateLimitedError(MomentsError):
    """429: the request was refused, nothing was queued. Transient.

    Attributes:
        retry_after_s: The server's ``Retry-After`` in seconds, if it sent one.
    """

    transient = True

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after_s = retry_after_s


class ServerError(MomentsError):
    """5xx. Transient; on a non-idempotent send it is wrapped in :class:`AmbiguousSendError`."""

    transient = True


class TransportError(MomentsError):
    """The exchange failed below HTTP (connect refused, timeout, dropped connection).

    Transient unless the request itself could not be built.
    """

    transient = True


class AmbiguousSendError(MomentsError):
    """The body may have been processed, and Infobip has no idempotency key.

    Raised for a read timeout, a dropped connection or a 5xx after a non-idempotent body
    (add-flow-participants, submit-form-data, increment-view-count) left the client. The client
    never re-sends such a request itself; the caller must reconcile (report, callback) first.
    ``transient`` is False: a blind retry is exactly what must not happen.

    Attributes:
        campaign_id: The flow campaign, for add-flow-participants.
        form_id: The form, for the forms operations.
        callback_data: The ``callbackData`` sent with the request, if any.
        cause: The underlying error (a :class:`ServerError` or :class:`TransportError`).
    """

    transient = False

    def __init__(
        self,
        message: str,
        *,
        cause: MomentsError,
        campaign_id: int | None = None,
        form_id: str | None = None,
        callback_data: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("status_code", cause.status_code)
        kwargs.setdefault("message_id", cause.message_id)
        kwargs.setdefault("error_code", cause.error_code)
        kwargs.setdefault("error_text", cause.error_text)
        super().__init__(message, **kwargs)
        self.cause = cause
        self.campaign_id = campaign_id
        self.form_id = form_id
        self.callback_data = callback_data


class ReportDeadlineExceeded(MomentsError):
    """The participants report still had PENDING entries when the poll deadline passed.

    Attributes:
        last_report: The last report fetched (a ``FlowParticipantsReportResponse``), or None.
    """

    transient = True

    def __init__(self, message: str, *, last_report: Any, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.last_report = last_report


def _as_text(value: object) -> str | None:
    if value is None:
        return None
    return str(value)


def parse_error_body(body: bytes) -> dict[str, Any]:
    """Read any of the three error envelopes into ``message_id``/``error_code``/``error_text``.

    Unknown or non-JSON bodies give an empty dict: the status code still classifies the error.
    """
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(data, dict):
        return {}
    request_error = data.get("requestError")
    if isinstance(request_error, dict):
        service = request_error.get("serviceException") or request_error.get("policyException")
        if isinstance(service, dict):
            validation = service.get("validationErrors")
            return {
                "message_id": _as_text(service.get("messageId")),
                "error_text": _as_text(service.get("text")),
                "validation_errors": validation if isinstance(validation, dict) else None,
            }
    if "errorCode" in data or "errorMessage" in data:
        return {
            "error_code": _as_text(data.get("errorCode")),
            "error_text": _as_text(data.get("errorMessage")),
        }
    if "detail" in data or "title" in data:
        # Problem object: the title names the kind, the detail says what was wrong.
        return {
            "message_id": _as_text(data.get("title")),
            "error_text": _as_text(data.get("detail")),
        }
    return {}


def parse_retry_after(value: str | None) -> float | None:
    """Return ``Retry-After`` in seconds (delta form only; an HTTP date is ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(0.0, seconds)


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "[redacted]") if secret else text


def error_from_response(
    *,
    operation: str,
    status_code: int,
    body: bytes,
    retry_after: str | None,
    secret: str,
) -> MomentsError:
    """Map a non-2xx response to the error tree.

    Args:
        operation: The spec operationId.
        status_code: The HTTP status.
        body: The raw response body.
        retry_after: The ``Retry-After`` header, if any.
        secret: The API key, scrubbed from any text the server echoed.
    """
    fields = parse_error_body(body)
    for key in ("message_id", "error_code", "error_text"):
        if fields.get(key):
            fields[key] = _scrub(fields[key], secret)
    code = fields.get("message_id") or fields.get("error_code")
    text = fields.get("error_text")
    detail = " ".join(part for part in (str(code) if code else None, text) if part)
    message = f"{operation}: HTTP {status_code}" + (f" {detail}" if detail else "")
    kwargs: dict[str, Any] = {"status_code": status_code, "operation": operation, **fields}
    if status_code in (401, 403):
        return AuthError(message, **kwargs)
    if status_code == 404:
        return NotFoundError(message, **kwargs)
    if status_code == 429:
        return RateLimitedError(message, retry_after_s=parse_retry_after(retry_after), **kwargs)
    if status_code >= 500:
        return ServerError(message, **kwargs)
    if status_code == 400 or status_code == 422:
        return ValidationError(message, **kwargs)
    return MomentsError(message, **kwargs)


# -- classification helpers ----------------------------------------------------------------


def error_summary(exc: MomentsError) -> str:
    """``<type>:HTTP_<status>:<code>``: what an error says, without the server's free text.

    The free text may echo request data; codes and status never do.
    """
    parts = [type(exc).__name__]
    if exc.status_code is not None:
        parts.append(f"HTTP_{exc.status_code}")
    code = exc.error_code or exc.message_id
    if code:
        parts.append(str(code))
    return ":".join(parts)


def is_flow_unavailable(exc: BaseException) -> bool:
    """True for the answer "this flow is missing or not active".

    That is errorCode 40401, or any 404 to add-flow-participants: the only 404 the spec
    documents there is 40401, and a 404 proves nothing was queued.
    """
    if not isinstance(exc, NotFoundError):
        return False
    return exc.error_code == FLOW_NOT_FOUND or exc.operation == "add-flow-participants"
