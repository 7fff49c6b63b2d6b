"""Receiver of ``notifyUrl`` callbacks: the report of an add operation, POSTed by Infobip.

The callback carries no signature, so the receiver authenticates it by a secret token in the
URL path: random, 256 bits, new for every receiver (Dagster builds one per sync run), compared in
constant time (``hmac.compare_digest``); a wrong token gets the same 404 as an unknown path,
whatever the method. The token never reaches a log line, a repr or an exception (uvicorn's
access log, which prints paths, is off); :meth:`CallbackReceiver.redacted_notify_url` is the
URL to show.

The receiver is meant to face the internet, so what a sender controls is bounded
(``_callback_guard``): the body is read as it streams and refused with 413 past
``max_body_bytes`` (2 MiB by default; a report of 1000 participants is ~150 KB), whatever
Content-Length says; every refusal and every handler outcome is a counter in
:attr:`CallbackReceiver.stats`, and logged only at the 1st, 2nd, 4th, ... occurrence.

Each report is checked once (:func:`read_report`: one orjson pass, the pydantic model only for
bodies that pass does not vouch for) and handed to the handler for its ``callbackData``:

- a typed handler (:meth:`CallbackReceiver.on`, ``handler=``) gets a
  ``FlowParticipantsReportResponse``, built only when such a handler or a waiter wants it;
- a raw handler (:meth:`CallbackReceiver.on_raw`, ``raw_handler=``) gets a :class:`RawReport`
  (the checked JSON bytes plus operationId, campaignId, callbackData, counts): the cheap path
  for handlers that store the report, with no per-participant objects built at all.

Memory stays bounded however many reports arrive: the receiver keeps the last ``keep_reports``
reports as bytes (not models; at most ``keep_bytes`` in all), so
:meth:`CallbackReceiver.wait_for` and :meth:`CallbackReceiver.received` also see a report
that arrived shortly before they were called; older ones are only with their handler.
Handlers run on the server's thread, one report at a time per connection: keep them short.
A raw handler may return a
:class:`CallbackOutcome` (what it did with the report: accepted, rejected, unknown), which the
receiver counts and logs; it decides nothing itself, since it knows no batches.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import pydantic
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ._callback_guard import (
    DEFAULT_MAX_BODY_BYTES,
    BodyTooLarge,
    CallbackOutcome,
    CallbackStats,
    read_limited_body,
    should_log,
)
from ._models import FlowParticipantsReportResponse
from ._raw_report import RawReport, read_report

__all__ = ["CallbackReceiver", "RawReportHandler", "ReportHandler"]

logger = logging.getLogger("moments_pipeline.infobip.callbacks")

ReportHandler = Callable[[FlowParticipantsReportResponse], Awaitable[None] | None]
RawReportHandler = Callable[[RawReport], Awaitable[CallbackOutcome | None] | CallbackOutcome | None]
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
MIN_TOKEN_LENGTH = 22
"""``secrets.token_urlsafe(16)``: 128 bits; the default token has 256."""
_Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[FlowParticipantsReportResponse]"]
# (handler, wants the raw report)
_Route = tuple[ReportHandler | RawReportHandler, bool]


class CallbackReceiver:
    """ASGI app receiving participant reports at ``{path_prefix}/{token}``.

    Args:
        token: Secret path token (at least 22 characters); by default a random 256-bit one,
            new for each receiver: build one receiver per run.
        handler: Typed handler for reports whose ``callbackData`` has no handler of its own.
        raw_handler: Raw handler (:class:`RawReport`) for those reports, instead of ``handler``.
        path_prefix: Path before the token.
        keep_reports: How many of the latest reports are kept (as bytes) for
            :meth:`wait_for` / :meth:`received` calls made after their arrival.
        keep_bytes: Most bytes of reports kept that way, all together.
        max_body_bytes: Largest body accepted; a larger one is answered 413, unread.

    Reports are keyed by ``callbackData`` (``""`` when absent).

    Raises:
        ValueError: A short token, both default handlers, or a negative limit.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        handler: ReportHandler | None = None,
        raw_handler: RawReportHandler | None = None,
        path_prefix: str = "/moments/callbacks",
        keep_reports: int = 64,
        keep_bytes: int = 16 * 1024 * 1024,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if token is not None and len(token) < MIN_TOKEN_LENGTH:
            raise ValueError(f"token must be at least {MIN_TOKEN_LENGTH} characters")
        if handler is not None and raw_handler is not None:
            raise ValueError("give handler or raw_handler, not both")
        if keep_reports < 0 or keep_bytes < 0 or max_body_bytes < 1:
            raise ValueError("keep_reports and keep_bytes must be >= 0, max_body_bytes >= 1")
        self._token = token or secrets.token_urlsafe(32)
        self._token_bytes = self._token.encode()
        self.max_body_bytes = max_body_bytes
        self._prefix = "/" + path_prefix.strip("/")
        self._default: _Route | None = None
        if handler is not None:
            self._default = (handler, False)
        elif raw_handler is not None:
            self._default = (raw_handler, True)
        self._routes: dict[str, _Route] = {}
        self._any_raw = raw_handler is not None
        self._recent: OrderedDict[str, RawReport] = OrderedDict()
        self._keep = keep_reports
        self._keep_bytes = keep_bytes
        self._kept_bytes = 0
        self._waiters: dict[str, list[_Waiter]] = {}
        self._lock = threading.Lock()
        self.stats = CallbackStats()
        # Every method reaches the endpoint, so a wrong token is a 404 whatever the method
        # (a 405 would confirm the prefix to a prober).
        route = Route(self._prefix + "/{token}", self._endpoint, methods=_ALL_METHODS)
        self.app = Starlette(routes=[route])

    def __repr__(self) -> str:
        return (
            f"CallbackReceiver(path_prefix={self._prefix!r}, token=<hidden>, "
            f"max_body_bytes={self.max_body_bytes})"
        )

    @property
    def rejected(self) -> int:
        """Requests refused for a wrong path token."""
        return self.stats.bad_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    @property
    def path(self) -> str:
        """The secret callback path (contains the token: do not log it)."""
        return f"{self._prefix}/{self._token}"

    @property
    def kept(self) -> int:
        """Number of reports currently kept for late :meth:`wait_for` calls."""
        with self._lock:
            return len(self._recent)

    def notify_url(self, base_url: str) -> str:
        """The ``notifyUrl`` to send with add-flow-participants (holds the token: never log)."""
        return base_url.rstrip("/") + self.path

    def redacted_notify_url(self, base_url: str) -> str:
        """The ``notifyUrl`` with the token replaced by ``<token>``, for logs and metadata."""
        return f"{base_url.rstrip('/')}{self._prefix}/<token>"

    def on(self, callback_data: str, handler: ReportHandler) -> None:
        """Hand reports with this ``callbackData`` to a typed ``handler``."""
        with self._lock:
            self._routes[callback_data] = (handler, False)

    def on_raw(self, callback_data: str, handler: RawReportHandler) -> None:
        """Hand reports with this ``callbackData`` to a raw ``handler`` (no model built)."""
        with self._lock:
            self._routes[callback_data] = (handler, True)
            self._any_raw = True

    def received(self, callback_data: str) -> FlowParticipantsReportResponse | None:
        """The last report received for ``callbackData``, if it is still kept."""
        with self._lock:
            raw = self._recent.get(callback_data)
        return None if raw is None else raw.model()

    async def wait_for(
        self,
        callback_data: str,
        timeout: float | None = None,  # noqa: ASYNC109 - the brief asks for wait_for(data, timeout)
    ) -> FlowParticipantsReportResponse:
        """Wait for the report with this ``callbackData`` (or return it if still kept).

        Raises:
            TimeoutError: No such report within ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[FlowParticipantsReportResponse] = loop.create_future()
        with self._lock:
            raw = self._recent.get(callback_data)
            if raw is None:
                waiter: _Waiter = (loop, future)
                self._waiters.setdefault(callback_data, []).append(waiter)
        if raw is not None:
            return raw.model()
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            with self._lock:
                waiting = self._waiters.get(callback_data, [])
                if waiter in waiting:
                    waiting.remove(waiter)
                if not waiting:
                    self._waiters.pop(callback_data, None)

    def _count(self, name: str, message: str, *args: object) -> None:
        # A fixed counter per fate; logged at the 1st, 2nd, 4th, ... time so that a flood of
        # bad requests can grow neither memory nor the log.
        count = self.stats.add(name)
        if should_log(count):
            logger.warning(message + " (%d so far)", *args, count)

    async def _endpoint(self, request: Request) -> Response:
        token = request.path_params.get("token", "")
        if not hmac.compare_digest(token.encode(), self._token_bytes):
            self._count("bad_token", "callback refused: unknown path token")
            return PlainTextResponse("Not Found", status_code=404)
        if request.method != "POST":
            return PlainTextResponse("Method Not Allowed", status_code=405)
        try:
            body = await read_limited_body(request, self.max_body_bytes)
        except BodyTooLarge:
            self._count("too_large", "callback refused: body over %d bytes", self.max_body_bytes)
            # The rest of the body stays unread: the connection cannot be reused.
            return PlainTextResponse(
                "Payload Too Large", status_code=413, headers={"connection": "close"}
            )
        except ValueError:
            self._count("invalid", "callback refused: malformed Content-Length")
            return PlainTextResponse("Bad Request", status_code=400)
        except ClientDisconnect:
            return PlainTextResponse("Bad Request", status_code=400)
        try:
            # With no raw handler anywhere, every report needs the model: one pass, not two.
            any_raw = self._any_raw
            raw, model = read_report(body, want_model=not any_raw)
        except pydantic.ValidationError as exc:
            self._count(
                "invalid",
                "callback refused: not a participants report (%d errors)",
                exc.error_count(),
            )
            return JSONResponse({"error": "not a FlowParticipantsReportResponse"}, status_code=400)
        del body
        key = raw.callback_data or ""
        with self._lock:
            self._keep_recent(key, raw)
            route = self._routes.get(key, self._default)
            waiters = self._waiters.pop(key, [])
        logger.debug(
            "callback received: operation %s, %d participants, %d pending",
            raw.operation_id,
            raw.participants,
            raw.pending,
        )
        if waiters or (route is not None and not route[1]):
            if model is None:
                model = raw.model()
            for loop, future in waiters:
                loop.call_soon_threadsafe(_resolve, future, model)
        outcome: object = None
        if route is not None:
            handler, wants_raw = route
            if wants_raw and model is not None and not any_raw:
                raw = RawReport.from_model(model)  # registered meanwhile: the spec's names
            try:
                outcome = handler(raw if wants_raw else model)  # type: ignore[arg-type]
                if inspect.isawaitable(outcome):
                    outcome = await outcome
            except Exception:
                # Waiters are resolved; a failing handler must not make the sender retry
                # forever, so answer 200 and leave the trace in the log.
                self.stats.add("handler_failed")
                logger.exception("callback handler failed for operation %s", raw.operation_id)
                return JSONResponse({"status": "OK"})
        self._note_outcome(outcome, raw)
        # 200 even for a report not applied: a forger learns nothing, and Infobip stops
        # retrying a report that is not ours.
        return JSONResponse({"status": "OK"})

    def _keep_recent(self, key: str, raw: RawReport) -> None:
        """Keep ``raw`` for late waiters, within ``keep_reports`` and ``keep_bytes`` (locked)."""
        if not self._keep or len(raw.body) > self._keep_bytes:
            return
        old = self._recent.pop(key, None)
        if old is not None:
            self._kept_bytes -= len(old.body)
        self._recent[key] = raw
        self._kept_bytes += len(raw.body)
        while len(self._recent) > self._keep or self._kept_bytes > self._keep_bytes:
            _, dropped = self._recent.popitem(last=False)
            self._kept_bytes -= len(dropped.body)

    def _note_outcome(self, outcome: object, raw: RawReport) -> None:
        if outcome is CallbackOutcome.REJECTED:
            # operationId only: callbackData is ours to know, and the body is personal data.
            self._count(
                "rejected",
                "callback not applied: operation %s is not the one recorded for its batch",
                raw.operation_id,
            )
        elif outcome is CallbackOutcome.UNKNOWN:
            self._count("unknown", "callback ignored: its callbackData names no known batch")
        else:
            self.stats.add("accepted")


def _resolve(
    future: asyncio.Future[FlowParticipantsReportResponse], report: FlowParticipantsReportResponse
) -> None:
    if not future.done():
        future.set_result(report)
