"""The two error envelopes of the Moments API, as the spec's examples show them.

- ``requestError.serviceException`` (ApiException) for 401/403/429/500 (and 502/503 faults).
- ``{"errorCode": "<string>", "errorMessage": ...}`` (ExceptionResponse) for the flow
  endpoints' 400/404. The schema says integer, the examples (what the live service sends)
  give a string such as ``"40401"``: the emulator follows the examples.
- The problem object (``type,title,status,detail,instance``) for unreadable request bodies.
"""

from __future__ import annotations

import orjson
from starlette.responses import Response

__all__ = [
    "GENERAL_ERROR_TEXT",
    "api_exception",
    "exception_response",
    "general_error",
    "json_response",
    "problem_response",
    "too_many_requests",
    "unauthorized",
]

GENERAL_ERROR_TEXT = "Something went wrong. Please contact support."
_JSON = "application/json"


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """Return an orjson-encoded JSON response."""
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type=_JSON)


def api_exception(
    status: int, message_id: str, text: str, headers: dict[str, str] | None = None
) -> Response:
    """Return the ``requestError.serviceException`` envelope."""
    body = {"requestError": {"serviceException": {"messageId": message_id, "text": text}}}
    return json_response(body, status, headers)


def unauthorized() -> Response:
    """401 exactly as the spec's example."""
    return api_exception(401, "UNAUTHORIZED", "Unauthorized")


def too_many_requests(retry_after_s: int) -> Response:
    """429 exactly as the spec's example, with ``Retry-After`` in whole seconds (>= 1)."""
    return api_exception(
        429,
        "TOO_MANY_REQUESTS",
        "Too many requests",
        headers={"Retry-After": str(max(1, int(retry_after_s)))},
    )


def general_error(status: int) -> Response:
    """500/502/503 with the spec's GENERAL_ERROR envelope."""
    return api_exception(status, "GENERAL_ERROR", GENERAL_ERROR_TEXT)


def exception_response(status: int, error_code: str, message: str) -> Response:
    """ExceptionResponse with ``errorCode`` as a string, as the spec's examples send it."""
    return json_response({"errorCode": error_code, "errorMessage": message}, status)


def problem_response(instance: str) -> Response:
    """The problem object the spec shows for a request body that cannot be read."""
    body = {
        "type": "about:blank",
        "title": "Bad Request",
        "status": 400,
        "detail": "Failed to read request",
        "instance": instance,
    }
    return json_response(body, 400)
