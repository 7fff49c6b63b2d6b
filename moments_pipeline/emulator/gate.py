"""The request gate in front of every API route: faults, auth, rate limit, log, recording.

Order for a request of a spec operation: injected fault (drop before / 5xx / 429: the request
is not processed), authentication (401), rate limit (429 + Retry-After; one budget for the
account, whichever credential is used), the route, then the
``drop_after`` fault (processed, connection dropped) or injected latency (after processing).
``/_emulator/`` requests skip all of it and are not logged.

A dropped connection must look like one to the client. Served by uvicorn (httptools), the
gate sends a response start carrying an invalid header value: uvicorn marks the response as
started, refuses to write it, and on the exception that follows closes the socket without
having written a byte, so the client gets "server disconnected" (httpx.RemoteProtocolError).
In process, ``testing.EmulatorTransport`` marks the scope and turns ``ConnectionDropped`` into
the same httpx exception. Authorization headers are never logged or recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import authenticate
from .errors import general_error, too_many_requests, unauthorized
from .faults import NO_FAULT
from .state import Emulator, Exchange

__all__ = [
    "RATE_LIMITED_OPERATIONS",
    "SINK_KEY",
    "ConnectionDropped",
    "EmulatorGate",
    "quiet_dropped_connections",
    "spec_operation",
]

SINK_KEY = "emulator.sink"

_OPERATIONS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"^/moments/1/flows/[^/]+/participants$"), "add-flow-participants"),
    (
        "GET",
        re.compile(r"^/moments/1/flows/[^/]+/participants/report$"),
        "get-flow-participants-added-report",
    ),
    (
        "DELETE",
        re.compile(r"^/communication/1/flows/[^/]+/participants$"),
        "remove-people-from-flow",
    ),
    ("POST", re.compile(r"^/communication/1/flows/[^/]+/participants$"), "add-people-to-flow"),
    ("GET", re.compile(r"^/forms/1/forms$"), "get-forms"),
    ("GET", re.compile(r"^/forms/1/forms/[^/]+$"), "get-form"),
    ("POST", re.compile(r"^/forms/1/forms/[^/]+/views$"), "increment-view-count"),
    ("POST", re.compile(r"^/forms/1/forms/[^/]+/data$"), "submit-form-data"),
)
# The spec publishes 10 req/s for these; the forms operations have no published limit.
RATE_LIMITED_OPERATIONS = frozenset(
    {
        "add-flow-participants",
        "get-flow-participants-added-report",
        "remove-people-from-flow",
        "add-people-to-flow",
    }
)
_FORMS_MUTATIONS = frozenset({"increment-view-count", "submit-form-data"})
# The spec's limit is per account, and the emulator models one account: every App key and
# Basic user is a credential of it, so they all draw on this one budget.
_ACCOUNT = "account"


def spec_operation(method: str, path: str) -> str | None:
    """Return the spec operationId of a request, or None outside the spec."""
    for op_method, pattern, operation in _OPERATIONS:
        if method == op_method and pattern.match(path):
            return operation
    return None


class ConnectionDropped(Exception):
    """Raised out of the app to make the server (or the in-process transport) drop the connection.

    Attributes:
        kind: ``drop_before`` or ``drop_after``.
    """

    def __init__(self, kind: str) -> None:
        super().__init__(f"emulator dropped the connection ({kind})")
        self.kind = kind


class _NotDroppedLogs(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped)


def quiet_dropped_connections() -> None:
    """Keep uvicorn from logging a traceback for every injected connection drop."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _NotDroppedLogs) for f in logger.filters):
        logger.addFilter(_NotDroppedLogs())


class EmulatorGate:
    """Wraps the routed app with the emulator's cross-cutting behaviour.

    Args:
        emulator: The emulator state.
    """

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        """Handle one HTTP request."""
        path: str = scope["path"]
        if path.startswith("/_emulator"):
            await app(scope, receive, send)
            return
        emulator = self.emulator
        emulator.ensure_worker()
        method: str = scope["method"]
        operation = spec_operation(method, path)
        recording = emulator.settings.record_exchanges
        body_parts: list[bytes] = []
        if recording:
            inner_receive = receive

            async def receive() -> Message:
                message = await inner_receive()
                if message["type"] == "http.request":
                    body_parts.append(message.get("body", b""))
                return message

        decision = emulator.faults.decide(operation) if operation else NO_FAULT
        sink: dict[str, Any] | None = scope.get(SINK_KEY)
        entry: dict[str, Any] = {
            "time": emulator.now(),
            "method": method,
            "path": path,
            "operation": operation,
            "status": None,
            "fault": decision.kind,
        }
        emulator.request_log.append(entry)
        if decision.kind == "drop_before":
            await _drop(send, sink, "drop_before")

        headers: dict[bytes, bytes] = dict(scope["headers"])
        response = None
        if decision.kind in ("500", "502", "503"):
            response = general_error(int(decision.kind))
        elif decision.kind == "429":
            response = too_many_requests(1)
        else:
            authorization = headers.get(b"authorization")
            account = authenticate(
                authorization.decode("latin-1") if authorization else None, emulator.settings
            )
            if account is None:
                response = unauthorized()
            elif operation in RATE_LIMITED_OPERATIONS and emulator.rate_limiter is not None:
                retry_after = emulator.rate_limiter.admit(_ACCOUNT, emulator.now())
                if retry_after is not None:
                    response = too_many_requests(retry_after)

        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        if response is not None:
            await response(scope, receive, capture)
        else:
            await app(scope, receive, capture)
        status = next((m["status"] for m in messages if m["type"] == "http.response.start"), 500)
        entry["status"] = status
        if operation in _FORMS_MUTATIONS and status < 400:
            emulator.journal_forms()
        if decision.kind == "drop_after":
            entry["status"] = None
            await _drop(send, sink, "drop_after")
        if recording:
            self._record(scope, headers, b"".join(body_parts), messages, operation, decision.kind)
        if decision.latency_s > 0:
            if sink is not None:
                sink["latency_s"] = decision.latency_s
            else:
                await asyncio.sleep(decision.latency_s)
        for message in messages:
            await send(message)

    def _record(
        self,
        scope: Scope,
        headers: dict[bytes, bytes],
        body: bytes,
        messages: list[Message],
        operation: str | None,
        fault: str | None,
    ) -> None:
        start = next(m for m in messages if m["type"] == "http.response.start")
        response_body = b"".join(
            m.get("body", b"") for m in messages if m["type"] == "http.response.body"
        )
        self.emulator.exchanges.append(
            Exchange(
                method=scope["method"],
                path=scope["path"],
                query_string=scope.get("query_string", b"").decode("latin-1"),
                request_headers={
                    k.decode("latin-1").lower(): v.decode("latin-1")
                    for k, v in headers.items()
                    if k.lower() != b"authorization"
                },
                request_body=body,
                status=start["status"],
                response_headers={
                    k.decode("latin-1").lower(): v.decode("latin-1")
                    for k, v in start.get("headers", [])
                },
                response_body=response_body,
                operation=operation,
                fault=fault if fault in ("500", "502", "503", "429") else None,
            )
        )


async def _drop(send: Send, sink: dict[str, Any] | None, kind: str) -> None:
    if sink is None:
        # Under uvicorn: an invalid header value makes it mark the response started and then
        # refuse to write it; the exception below then makes it close the socket silently.
        with contextlib.suppress(Exception):
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"x-emulator-drop", b"\r\n")],
                }
            )
    raise ConnectionDropped(kind)
