"""Receiver of ``notifyUrl`` callbacks: the report of an add operation, POSTed by Infobip.

The callback carries no signature, so the receiver authenticates it by a secret token in the
URL path, compared in constant time; a wrong token gets the same 404 as an unknown path. The
token never reaches a log line or a repr (uvicorn's access log, which prints paths, is off).
Each report is parsed as a ``FlowParticipantsReportResponse`` and handed to the handler
registered for its ``callbackData``; :meth:`CallbackReceiver.wait_for` awaits one.
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

__all__ = ["CallbackReceiver", "CallbackServer", "ReportHandler"]

logger = logging.getLogger("moments_pipeline.infobip.callbacks")

ReportHandler = Callable[[FlowParticipantsReportResponse], Awaitable[None] | None]
_Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[FlowParticipantsReportResponse]"]


class CallbackReceiver:
    """ASGI app receiving participant reports at ``{path_prefix}/{token}``.

    Args:
        token: Secret path token; a random 256-bit one by default.
        handler: Called for reports whose ``callbackData`` has no handler of its own.
        path_prefix: Path before the token.

    Reports are keyed by ``callbackData`` (``""`` when absent) and kept, so :meth:`wait_for`
    also returns reports that arrived before it was called.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        handler: ReportHandler | None = None,
        path_prefix: str = "/moments/callbacks",
    ) -> None:
        if token is not None and len(token) < 16:
            raise ValueError("token must be at least 16 characters")
        self._token = token or secrets.token_urlsafe(32)
        self._prefix = "/" + path_prefix.strip("/")
        self._default_handler = handler
        self._handlers: dict[str, ReportHandler] = {}
        self._reports: dict[str, FlowParticipantsReportResponse] = {}
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

    def notify_url(self, base_url: str) -> str:
        """The ``notifyUrl`` to send with add-flow-participants, under ``base_url``."""
        return base_url.rstrip("/") + self.path

    def on(self, callback_data: str, handler: ReportHandler) -> None:
        """Hand reports with this ``callbackData`` to ``handler``."""
        with self._lock:
            self._handlers[callback_data] = handler

    def received(self, callback_data: str) -> FlowParticipantsReportResponse | None:
        """The last report received for ``callbackData``, if any."""
        with self._lock:
            return self._reports.get(callback_data)

    async def wait_for(
        self,
        callback_data: str,
        timeout: float | None = None,  # noqa: ASYNC109 - the brief asks for wait_for(data, timeout)
    ) -> FlowParticipantsReportResponse:
        """Wait for the report with this ``callbackData``.

        Raises:
            TimeoutError: No such report within ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[FlowParticipantsReportResponse] = loop.create_future()
        with self._lock:
            report = self._reports.get(callback_data)
            if report is not None:
                return report
            waiter: _Waiter = (loop, future)
            self._waiters.setdefault(callback_data, []).append(waiter)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            with self._lock:
                waiting = self._waiters.get(callback_data, [])
                if waiter in waiting:
                    waiting.remove(waiter)

    async def _endpoint(self, request: Request) -> Response:
        token = request.path_params.get("token", "")
        if not hmac.compare_digest(token.encode(), self._token.encode()):
            self.rejected += 1
            logger.warning("callback rejected: unknown path token")
            return PlainTextResponse("Not Found", status_code=404)
        body = await request.body()
        try:
            report = FlowParticipantsReportResponse.model_validate_json(body)
        except pydantic.ValidationError as exc:
            logger.warning(
                "callback rejected: not a participants report (%d errors)", exc.error_count()
            )
            return JSONResponse({"error": "not a FlowParticipantsReportResponse"}, status_code=400)
        key = report.callback_data or ""
        with self._lock:
            self._reports[key] = report
            handler = self._handlers.get(key, self._default_handler)
            waiters = self._waiters.pop(key, [])
        logger.info(
            "callback received: operation %s, %d participants, %d pending",
            report.operation_id,
            len(report.participants),
            report.pending,
        )
        for loop, future in waiters:
            loop.call_soon_threadsafe(_resolve, future, report)
        if handler is not None:
            try:
                result = handler(report)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                # The report is stored and waiters resolved; a failing handler must not make
                # the sender retry forever, so answer 200 and leave the trace in the log.
                logger.exception("callback handler failed for operation %s", report.operation_id)
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
