"""Serves a :class:`CallbackReceiver` with uvicorn, in a thread or as an asyncio task.

uvicorn's access log (which prints request paths, hence the receiver's secret token) is off;
the server's repr and :attr:`CallbackServer.redacted_notify_url` never show the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from types import TracebackType

import uvicorn

from ._receiver import CallbackReceiver

__all__ = ["CallbackServer"]


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

    @property
    def redacted_notify_url(self) -> str:
        """The ``notifyUrl`` with its token replaced by ``<token>``: safe for logs and metadata."""
        return self.receiver.redacted_notify_url(self.base_url)

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
