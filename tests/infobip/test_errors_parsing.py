"""The three error envelopes map onto the error tree; the key never leaks into messages."""

from __future__ import annotations

import orjson
import pytest

from moments_pipeline.infobip import (
    AuthError,
    MomentsError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    ValidationError,
)
from moments_pipeline.infobip._errors import error_from_response

SECRET = "errors-secret-key-abcdef0123456789"


def _error(status: int, body: object, retry_after: str | None = None) -> MomentsError:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return error_from_response(
        operation="op", status_code=status, body=raw, retry_after=retry_after, secret=SECRET
    )


def test_service_exception_envelope() -> None:
    error = _error(
        401,
        {
            "requestError": {
                "serviceException": {"messageId": "UNAUTHORIZED", "text": "Unauthorized"}
            }
        },
    )
    assert isinstance(error, AuthError)
    assert (error.message_id, error.error_text, error.transient) == (
        "UNAUTHORIZED",
        "Unauthorized",
        False,
    )


def test_validation_errors_are_kept() -> None:
    error = _error(
        400,
        {
            "requestError": {
                "serviceException": {
                    "messageId": "BAD_REQUEST",
                    "text": "Bad request",
                    "validationErrors": {"email": ["invalid"]},
                }
            }
        },
    )
    assert isinstance(error, ValidationError)
    assert error.validation_errors == {"email": ["invalid"]}


@pytest.mark.parametrize("code", ["40401", 40401])
def test_error_code_string_or_int(code: object) -> None:
    error = _error(404, {"errorCode": code, "errorMessage": "Could not find active flow"})
    assert isinstance(error, NotFoundError)
    assert error.error_code == "40401"
    assert "40401" in str(error)


def test_problem_object() -> None:
    error = _error(
        400,
        {
            "type": "about:blank",
            "title": "Bad Request",
            "status": 400,
            "detail": "Failed to read request",
            "instance": "/moments/1/flows/1/participants",
        },
    )
    assert isinstance(error, ValidationError)
    assert error.error_text == "Failed to read request"
    assert error.message_id == "Bad Request"


def test_429_retry_after_and_transient() -> None:
    error = _error(429, b"", retry_after="2")
    assert isinstance(error, RateLimitedError)
    assert error.retry_after_s == 2.0
    assert error.transient is True


def test_5xx_with_non_json_body() -> None:
    error = _error(502, b"<html>bad gateway</html>")
    assert isinstance(error, ServerError)
    assert error.transient is True
    assert error.status_code == 502


def test_echoed_key_is_scrubbed() -> None:
    error = _error(
        403,
        {"requestError": {"serviceException": {"messageId": "FORBIDDEN", "text": f"key {SECRET}"}}},
    )
    assert SECRET not in str(error)
    assert SECRET not in repr(error)
    assert SECRET not in (error.error_text or "")
