"""Test support: an in-process httpx transport and a served emulator on a loopback port.

``EmulatorTransport`` runs the app in process and turns injected faults into what a socket
would give: a dropped connection becomes ``httpx.RemoteProtocolError``; injected latency is
slept, or, when it exceeds the request's read timeout, becomes ``httpx.ReadTimeout`` raised
after the request was processed (the ambiguous case), without waiting for it.

``ServedEmulator`` runs uvicorn on a free 127.0.0.1 port, in a background thread (``.emulator``
is then the live state) or in a subprocess (``subprocess=True``; needed to kill it with
SIGKILL and to restart it on the same state file). With ``record_exchanges`` on, a subprocess'
recorded exchanges are fetched (``GET /_emulator/exchanges``) just before each stop or kill and
kept in ``.exchanges`` across restarts, so contract tests see them; a fetch that fails is kept
in ``.exchange_fetch_errors`` (the contract fixture reports it rather than skipping).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess as sp
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import orjson
import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from .app import create_app
from .cli import API_KEY_ENV
from .clock import Clock
from .gate import SINK_KEY, ConnectionDropped, quiet_dropped_connections
from .settings import EmulatorSettings
from .state import Emulator, Exchange

__all__ = ["EmulatorTransport", "ServedEmulator"]


class EmulatorTransport(httpx.AsyncBaseTransport):
    """httpx transport running the emulator app in process.

    Args:
        app: An app from ``create_app``.
    """

    def __init__(self, app: Starlette) -> None:
        self.app = app

    @property
    def emulator(self) -> Emulator:
        """The app's emulator state."""
        emulator: Emulator = self.app.state.emulator
        return emulator

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Run the request through the app, mapping injected faults to httpx exceptions."""
        sink: dict[str, Any] = {}
        app = self.app

        async def marked(scope: Scope, receive: Receive, send: Send) -> None:
            scope[SINK_KEY] = sink
            await app(scope, receive, send)

        try:
            response = await httpx.ASGITransport(app=marked).handle_async_request(request)
        except ConnectionDropped:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from None
        latency = float(sink.get("latency_s", 0.0))
        if latency > 0:
            timeout = request.extensions.get("timeout", {}).get("read")
            if timeout is not None and latency > timeout:
                raise httpx.ReadTimeout("The read operation timed out", request=request)
            await asyncio.sleep(latency)
        return response


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServedEmulator:
    """Context manager serving the emulator with uvicorn on 127.0.0.1.

    Args:
        settings: Emulator settings (default: ``EmulatorSettings()``); ``api_keys`` gets
            ``api_key`` added.
        api_key: The key clients use (``Authorization: App <api_key>``).
        clock: Clock of the in-thread emulator (ignored with ``subprocess=True``).
        subprocess: Serve from a child process (the ``moments-pipeline emulator`` command).
        manual_clock: With ``subprocess``, run the child on a manual clock advanced through
            ``POST /_emulator/clock/advance``.
        state_path: Journal file (overrides ``settings.state_path``).
    """

    def __init__(
        self,
        settings: EmulatorSettings | None = None,
        *,
        api_key: str = "test-key",
        clock: Clock | None = None,
        subprocess: bool = False,
        manual_clock: bool = False,
        state_path: Path | None = None,
    ) -> None:
        base = settings or EmulatorSettings()
        update: dict[str, Any] = {}
        if state_path is not None:
            update["state_path"] = state_path
        self.settings = base.model_copy(update=update)
        self.api_key = api_key
        self._clock = clock
        self._subprocess = subprocess
        self._manual_clock = manual_clock
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._process: sp.Popen[bytes] | None = None
        self._app: Starlette | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._collected: list[Exchange] = []
        self.exchange_fetch_errors: list[str] = []

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def emulator(self) -> Emulator:
        """The live emulator state (in-thread only)."""
        if self._app is None:
            raise RuntimeError("the emulator state is only reachable when served in-thread")
        emulator: Emulator = self._app.state.emulator
        return emulator

    @property
    def exchanges(self) -> list[Exchange]:
        """Recorded exchanges: live in-thread; in a subprocess, those fetched at stop/kill."""
        if self._app is not None:
            return self.emulator.exchanges
        return self._collected

    def _collect_exchanges(self) -> None:
        """Fetch the child's recorded exchanges before it goes away (subprocess mode)."""
        if self._process is None or not self.settings.record_exchanges:
            return
        try:
            response = httpx.get(f"{self.base_url}/_emulator/exchanges", timeout=30.0)
            response.raise_for_status()
            self._collected.extend(Exchange.from_dict(raw) for raw in response.json())
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            self.exchange_fetch_errors.append(
                f"exchanges of the emulator process {self._process.pid} could not be fetched:"
                f" {type(exc).__name__}: {exc}"
            )

    @property
    def pid(self) -> int | None:
        """Process id of the child (subprocess mode)."""
        return self._process.pid if self._process is not None else None

    def start(self) -> ServedEmulator:
        """Start serving and wait until the server answers."""
        if self._subprocess:
            self._start_process()
        else:
            self._start_thread()
        return self

    def _start_thread(self) -> None:
        quiet_dropped_connections()
        settings = self.settings.model_copy(
            update={"api_keys": [*self.settings.api_keys, SecretStr(self.api_key)]}
        )
        self._app = create_app(settings, clock=self._clock)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app, http="httptools", lifespan="on", log_level="warning", access_log=False
        )
        server = self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="served-emulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the served emulator did not start")
            time.sleep(0.01)

    def _start_process(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="emulator-")
        config = Path(self._tmp.name) / "config.json"
        data = self.settings.model_dump(mode="json", exclude={"api_keys", "basic_users"})
        data["basic_users"] = [
            {"username": u.username, "password": u.password.get_secret_value()}
            for u in self.settings.basic_users
        ]
        config.write_bytes(orjson.dumps(data))
        self.port = _free_port()
        command = [
            sys.executable,
            "-m",
            "moments_pipeline.cli",
            "emulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--config",
            str(config),
        ]
        if self._manual_clock:
            command.append("--manual-clock")
        # The key goes through the environment, not argv: it must not show in ``ps``.
        env = {**os.environ, API_KEY_ENV: self.api_key}
        self._process = sp.Popen(  # noqa: S603
            command, stdout=sp.DEVNULL, stderr=sp.DEVNULL, env=env
        )
        deadline = time.monotonic() + 30
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"the emulator process exited with {self._process.returncode}")
            try:
                httpx.get(f"{self.base_url}/_emulator/faults", timeout=1.0)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the emulator process did not start") from None
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the child process (subprocess mode): no clean shutdown, no compaction."""
        if self._process is None:
            raise RuntimeError("kill() needs subprocess=True")
        # Reading the record changes no state, so the kill still lands mid-stream.
        self._collect_exchanges()
        os.kill(self._process.pid, signal.SIGKILL)
        self._process.wait(timeout=10)
        self._process = None

    def stop(self) -> None:
        """Stop serving cleanly (the journal is compacted)."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=20)
            self._server = None
            self._thread = None
        if self._process is not None:
            self._collect_exchanges()
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=20)
            except sp.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
            self._process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> ServedEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ServedEmulator(base_url={self.base_url!r}, subprocess={self._subprocess})"
