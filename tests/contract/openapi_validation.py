"""Validate recorded emulator exchanges against Infobip's OpenAPI document (openapi-core 0.23).

One exchange = one request and the emulator's response. The response is checked with
openapi-core's response validation (the request only locates the operation). Exactly two
deviations of the live service, named by ``../shared/infobip/README.md``, are excused:

- ``errorCode`` sent as a digit string (``"40401"``) where ExceptionResponse says integer;
- a ``date-time`` written with a ``+0000``-style offset (no colon), which is otherwise a valid
  RFC 3339 timestamp (``2022-07-11T06:38:12.757+0000``).

Nothing else is excused: any other schema error, an undocumented status, a missing body or an
unknown path is a violation. ``/_emulator/`` inspection paths are outside the spec and skipped.
A schema error under ``anyOf`` is excused only if one branch fails solely by excused errors.

Strictness: the document's object schemas name their ``properties`` but (mostly) give no
``required`` and leave extra properties open, so as published it would accept the wrong error
envelope, a misspelled field or ``{}``. Before the OpenAPI object is built, ``strict_spec``
gives every object schema that has ``properties`` and no ``additionalProperties`` of its own
``additionalProperties: false`` and ``minProperties: 1``: an answer may only use the fields
the spec names, and must use at least one. Free-form maps the spec declares as such
(``customAttributes``, ``variables``...) keep their ``additionalProperties``. Every JSON example
of the spec still passes (a test checks it).

One reading, not an excuse: 502/503/504 are gateway answers (the emulator injects them as
faults, the live service's load balancer sends them) that the spec documents for no
operation; their body must still be what the operation documents for 500 (the ApiException
envelope), so they are validated as that 500 answer. Likewise an answer the emulator marks as
injected (``Exchange.fault``, e.g. a 429 on get-form, which documents no 429) is validated
against the operation's 500 answer when its own status is not documented.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl

from jsonschema.exceptions import ValidationError as SchemaError
from openapi_core import OpenAPI
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.validation.schemas.exceptions import InvalidSchemaValue

INSPECTION_PREFIX = "/_emulator/"
# Any host works: the spec declares no servers, so openapi-core matches on the path alone.
_HOST_URL = "http://emulator.invalid"
GATEWAY_STATUSES = frozenset({502, 503, 504})
ERROR_CODE_AS_STRING = "errorCode given as a string (ExceptionResponse says integer)"
OFFSET_WITHOUT_COLON = "date-time with a +0000 offset (no colon)"
_NO_COLON_OFFSET = re.compile(
    r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?)([+-])(\d{2})(\d{2})"
)


class RecordedExchange(Protocol):
    """What the validator reads of an exchange (``moments_pipeline.emulator.state.Exchange``)."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def query_string(self) -> str: ...
    @property
    def request_headers(self) -> Mapping[str, str]: ...
    @property
    def request_body(self) -> bytes: ...
    @property
    def status(self) -> int: ...
    @property
    def response_headers(self) -> Mapping[str, str]: ...
    @property
    def response_body(self) -> bytes: ...


@dataclass(frozen=True)
class Exchange:
    """A plain exchange, for feeding the validator by hand (self-tests, ad-hoc checks)."""

    method: str
    path: str
    status: int
    response_body: bytes
    query_string: str = ""
    request_headers: Mapping[str, str] = field(default_factory=dict)
    request_body: bytes = b""
    response_headers: Mapping[str, str] = field(
        default_factory=lambda: {"content-type": "application/json"}
    )
    fault: str | None = None


@dataclass(frozen=True)
class Violation:
    """One way a response breaks the contract.

    Attributes:
        exchange: ``METHOD path -> status`` of the offending exchange.
        location: JSON path inside the response body (``$`` for the whole answer).
        message: What is wrong.
    """

    exchange: str
    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.exchange}: {self.location}: {self.message}"


def strict_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``spec`` whose object schemas with ``properties`` are closed.

    Every schema holding ``properties`` and no ``additionalProperties`` gets
    ``additionalProperties: false`` and ``minProperties: 1``; nothing else changes.

    Args:
        spec: The parsed OpenAPI document (left untouched).
    """
    strict: dict[str, Any] = copy.deepcopy(dict(spec))

    def close(node: object) -> None:
        if isinstance(node, dict):
            if (
                isinstance(node.get("properties"), dict)
                and "additionalProperties" not in node
                and node.get("type", "object") == "object"
            ):
                node["additionalProperties"] = False
                node.setdefault("minProperties", 1)
            for key, value in node.items():
                if key not in ("example", "examples"):  # data, not schemas
                    close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(strict)
    return strict


def excused_deviation(error: SchemaError) -> str | None:
    """Return which README-named deviation ``error`` is, or None if it is not excused.

    Args:
        error: One jsonschema error from validating a response body.
    """
    last = error.absolute_path[-1] if error.absolute_path else None
    if (
        error.validator == "type"
        and error.validator_value == "integer"
        and last == "errorCode"
        and isinstance(error.instance, str)
        and error.instance.isascii()
        and error.instance.isdigit()
    ):
        return ERROR_CODE_AS_STRING
    if (
        error.validator == "format"
        and error.validator_value == "date-time"
        and isinstance(error.instance, str)
    ):
        match = _NO_COLON_OFFSET.fullmatch(error.instance)
        if match is None:
            return None
        stamp, sign, hours, minutes = match.groups()
        try:  # with the colon put back it must be a real timestamp, else it is not the quirk
            datetime.fromisoformat(f"{stamp}{sign}{hours}:{minutes}")
        except ValueError:
            return None
        return OFFSET_WITHOUT_COLON
    return None


def unexcused_errors(errors: Iterable[SchemaError]) -> list[SchemaError]:
    """Return the schema errors that remain once the two deviations are excused."""
    remaining: list[SchemaError] = []
    for error in errors:
        if excused_deviation(error) is not None:
            continue
        if error.validator == "anyOf" and error.context:
            branches: dict[object, list[SchemaError]] = defaultdict(list)
            for sub in error.context:
                branches[sub.relative_schema_path[0]].append(sub)
            if any(not unexcused_errors(branch) for branch in branches.values()):
                continue
        remaining.append(error)
    return remaining


class ContractValidator:
    """Validates exchanges against one OpenAPI document (build it once per session).

    Args:
        spec_path: Path of ``moments-openapi.json``.
    """

    def __init__(self, spec_path: Path) -> None:
        self.spec_path = spec_path
        self._openapi = OpenAPI.from_dict(strict_spec(json.loads(spec_path.read_text())))

    def raw_errors(self, exchange: RecordedExchange) -> list[Exception]:
        """Return openapi-core's response errors for one exchange, nothing excused.

        Args:
            exchange: The recorded request and response.
        """
        if exchange.path.startswith(INSPECTION_PREFIX):
            return []
        request_headers = dict(exchange.request_headers or {})
        request = MockRequest(
            _HOST_URL,
            exchange.method,
            exchange.path,
            args=dict(parse_qsl(exchange.query_string, keep_blank_values=True)),
            headers=request_headers,
            data=exchange.request_body,
            content_type=_header(request_headers, "content-type") or "application/json",
        )
        errors = self._response_errors(request, exchange, exchange.status)
        injected = getattr(exchange, "fault", None) is not None
        if injected and any(isinstance(error, ResponseNotFound) for error in errors):
            errors = self._response_errors(request, exchange, 500)
        return errors

    def _response_errors(
        self, request: MockRequest, exchange: RecordedExchange, status: int
    ) -> list[Exception]:
        response_headers = dict(exchange.response_headers or {})
        response = MockResponse(
            exchange.response_body,
            status_code=500 if status in GATEWAY_STATUSES else status,
            headers=response_headers,
            content_type=_header(response_headers, "content-type") or "",
        )
        return list(self._openapi.iter_response_errors(request, response))

    def validate(self, exchange: RecordedExchange) -> list[Violation]:
        """Return the contract violations of one exchange (empty when it conforms).

        Args:
            exchange: The recorded request and response.
        """
        label = f"{exchange.method.upper()} {exchange.path} -> {exchange.status}"
        violations: list[Violation] = []
        for error in self.raw_errors(exchange):
            cause = error.__cause__
            if isinstance(cause, InvalidSchemaValue):
                for schema_error in unexcused_errors(cause.schema_errors):
                    violations.append(
                        Violation(label, _location(schema_error), _describe(schema_error))
                    )
            else:
                detail = str(cause) if cause is not None else str(error)
                violations.append(Violation(label, "$", f"{type(error).__name__}: {detail}"))
        return violations

    def validate_all(self, exchanges: Iterable[RecordedExchange]) -> list[Violation]:
        """Validate many exchanges and return all violations, in order."""
        return [v for exchange in exchanges for v in self.validate(exchange)]


@functools.lru_cache(maxsize=4)
def contract_validator(spec_path: Path) -> ContractValidator:
    """Return the validator of ``spec_path``, loading the document once per process."""
    return ContractValidator(spec_path)


def format_violations(violations: Iterable[Violation]) -> str:
    """Render violations as a readable, numbered list."""
    lines = [f"{n}. {violation}" for n, violation in enumerate(violations, start=1)]
    return "\n".join(lines)


def _location(error: SchemaError) -> str:
    return "$" + "".join(f"[{part!r}]" for part in error.absolute_path)


def _describe(error: SchemaError) -> str:
    if error.validator != "anyOf" or not error.context:
        return error.message
    # Name what each alternative still lacks, so the failure is readable without a debugger.
    reasons = "; ".join(
        f"branch {sub.relative_schema_path[0]}: {_location(sub)} {sub.message}"
        for sub in unexcused_errors(error.context)
    )
    return f"matches none of the anyOf alternatives ({reasons})"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None
