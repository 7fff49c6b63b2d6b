"""Receiver of ``notifyUrl`` callbacks: the report of an add operation, POSTed by Infobip.

The callback carries no signature, so the receiver authenticates it by a secret token in the
URL path, compared in constant time; a wrong token gets the same 404 as an unknown path. The
token never reaches a log line or a repr (uvicorn's access log, which prints paths, is off).

Each report is checked once (:func:`read_report`: one orjson pass, the pydantic model only for
bodies that pass does not vouch for) and handed to the handler for its ``callbackData``:

- a typed handler (:meth:`CallbackReceiver.on`, ``handler=``) gets a
  ``FlowParticipantsReportResponse``, built only when such a handler or a waiter wants it;
- a raw handler (:meth:`CallbackReceiver.on_raw`, ``raw_handler=``) gets a :class:`RawReport`
  (the checked JSON bytes plus operationId, campaignId, callbackData, counts): the cheap path
  for handlers that store the report, with no per-participant objects built at all.

Memory stays bounded however many reports arrive: the receiver keeps the last ``keep_reports``
reports as bytes (not models), so :meth:`CallbackReceiver.wait_for` and
:meth:`CallbackReceiver.received` also see a report that arrived shortly before they were
called; older ones are only with their handler. Handlers run on the server's thread, one
report at a time per connection: keep them short.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import logging
import secrets
import socket
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from types import TracebackType

import pydantic
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ._models import FlowParticipantsReportResponse
from ._raw_report import RawReport, read_report

__all__ = ["CallbackReceiver", "CallbackServer", "RawReportHandler", "ReportHandler"]

logger = logging.getLogger("moments_pipeline.infobip.callbacks")

ReportHandler = Callable[[FlowParticipantsReportResponse], Awaitable[None] | None]
RawReportHandler = Callable[[RawReport], Awaitable[None] | None]
_Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[FlowParticipantsReportResponse]"]
# (handler, wants the raw report)
_Route = tuple[ReportHandler | RawReportHandler, bool]


class CallbackReceiver:
    """ASGI app receiving participant reports at ``{path_prefix}/{token}``.

    Args:
        token: Secret path token; a random 256-bit one by default.
        handler: Typed handler for reports whose ``callbackData`` has no handler of its own.
        raw_handler: Raw handler (:class:`RawReport`) for those reports, instead of ``handler``.
        path_prefix: Path before the token.
        keep_reports: How many of the latest reports are kept (as bytes) for
            :meth:`wait_for` / :meth:`received` calls made after their arrival.

    Reports are keyed by ``callbackData`` (``""`` when absent).

    Raises:
        ValueError: A short token, both default handlers, or a negative ``keep_reports``.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        handler: ReportHandler | None = None,
        raw_handler: RawReportHandler | None = None,
        path_prefix: str = "/moments/callbacks",
        keep_reports: int = 64,
    ) -> None:
        if token is not None and len(token) < 16:
            raise ValueError("token must be at least 16 characters")
        if handler is not None and raw_handler is not None:
            raise ValueError("give handler or raw_handler, not both")
        if keep_reports < 0:
            raise ValueError("keep_reports must be >= 0")
        self._token = token or secrets.token_urlsafe(32)
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
        self._waiters: dict[str, list[_Waiter]] = {}
        self._lock = threading.Lock()
        self.rejected = 0
        self.app = Starlette(
            routes=[Route(self._prefix + "/{token}", self._endpoint, methods=["POST"])]
        )

    def __repr__(self) -> str:
        return f"CallbackReceiver(path_prefix={self._prefix!r}, token=<hidden>)"

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
        """The ``notifyUrl`` to send with add-flow-participants, under ``base_url``."""
        return base_url.rstrip("/") + self.path

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

    async def _endpoint(self, request: Request) -> Response:
        token = request.path_params.get("token", "")
        if not hmac.compare_digest(token.encode(), self._token.encode()):
            self.rejected += 1
            logger.warning("callback rejected: unknown path token")
            return PlainTextResponse("Not Found", status_code=404)
        body = await request.body()
        try:
            # With no raw handler anywhere, every report needs the model: one pass, not two.
            any_raw = self._any_raw
            raw, model = read_report(body, want_model=not any_raw)
        except pydantic.ValidationError as exc:
            logger.warning(
                "callback rejected: not a participants report (%d errors)", exc.error_count()
            )
            return JSONResponse({"error": "not a FlowParticipantsReportResponse"}, status_code=400)
        key = raw.callback_data or ""
        with self._lock:
            if self._keep:
                self._recent.pop(key, None)
                self._recent[key] = raw
                while len(self._recent) > self._keep:
                    self._recent.popitem(last=False)
            route = self._routes.get(key, self._default)
            waiters = self._waiters.pop(key, [])
        logger.info(
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
        if route is not None:
            handler, wants_raw = route
            if wants_raw and model is not None and not any_raw:
                raw = RawReport.from_model(model)  # registered meanwhile: the spec's names
            try:
                result = handler(raw if wants_raw else model)  # type: ignore[arg-type]
                if inspect.isawaitable(result):
                    await result
            except Exception:
                # Waiters are resolved; a failing handler must not make the sender retry
                # forever, so answer 200 and leave the trace in the log.
                logger.exception("callback handler failed for operation %s", raw.operation_id)
        return JSONResponse({"status": "OK"})


def _resolve(
    future: asyncio.Future[FlowParticipantsReportResponse], report: FlowParticipantsReportResponse
) -> None:
    if not future.done():
        future.set_result(report)


class CallbackServer:
    """Serves a :class:`CallbackReceiver` with uvicorn, in a thread or as an asyncio task.

    Args:
        receiver: The app to serve.
        host: Interface to bind (loopback by default).
        port: Port to bind; 0 picks a free one.
        public_base_url: Base URL Infobip reaches the server at (behind a proxy or tunnel);
            defaults to ``http://host:port``.

    ``with CallbackServer(r) as s:`` runs it in a thread; ``async with`` runs it as a task.
    """

    def __init__(
        self,
        receiver: CallbackReceiver,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        public_base_url: str | None = None,
    ) -> None:
        self.receiver = receiver
        self._sock = socket.socket(
            socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM
        )
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        self._public_base_url = public_base_url
        self._server = uvicorn.Server(
            uvicorn.Config(receiver, log_level="warning", access_log=False, lifespan="off")
        )
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"CallbackServer(host={self.host!r}, port={self.port})"

    @property
    def base_url(self) -> str:
        """Where the server is reachable."""
        if self._public_base_url:
            return self._public_base_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def notify_url(self) -> str:
        """The ``notifyUrl`` to send (contains the secret token: do not log it)."""
        return self.receiver.notify_url(self.base_url)

    def start(self) -> CallbackServer:
        """Serve in a daemon thread; returns once the server accepts connections."""
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("callback server failed to start")
            threading.Event().wait(0.01)
        return self

    def stop(self) -> None:
        """Stop the thread started by :meth:`start`."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._sock.close()

    def __enter__(self) -> CallbackServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> CallbackServer:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("callback server failed to start")
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._sock.close()
