"""The ASGI app factory of the emulator.

``create_app`` builds a Starlette app whose ``app.state.emulator`` is the ``Emulator``; the
Moments flow routes, the forms routes (the forms engineer's ``forms.form_routes()``) and the
``/_emulator/`` inspection routes are mounted on it, behind the ``EmulatorGate`` (faults,
auth, rate limit, log, recording), which sits outside Starlette's own error middleware so an
injected connection drop reaches the server untouched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from .api import api_routes
from .clock import Clock
from .forms import form_routes
from .gate import EmulatorGate
from .inspection import inspection_routes
from .settings import EmulatorSettings
from .state import Emulator

__all__ = ["EmulatorApp", "create_app"]


class EmulatorApp(Starlette):
    """Starlette app with the emulator gate in front of everything."""

    gate: EmulatorGate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route HTTP requests through the gate; lifespan goes straight to Starlette."""
        if scope["type"] == "http":
            scope["app"] = self
            await self.gate(scope, receive, send, super().__call__)
        else:
            await super().__call__(scope, receive, send)


def create_app(
    settings: EmulatorSettings | None = None,
    *,
    clock: Clock | None = None,
    callback_transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """Return the emulator as a Starlette app.

    Args:
        settings: Emulator settings (defaults: ``EmulatorSettings()``).
        clock: Time source (default: the wall clock; tests pass a ``ManualClock``).
        callback_transport: httpx transport for ``notifyUrl`` POSTs (tests route them to an
            ASGI app of their own).
    """
    emulator = Emulator(
        settings or EmulatorSettings(), clock, callback_transport=callback_transport
    )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        emulator.ensure_worker()
        try:
            yield
        finally:
            await emulator.aclose()

    routes: list[BaseRoute] = [*api_routes(), *form_routes(), *inspection_routes()]
    app = EmulatorApp(routes=routes, lifespan=lifespan)
    app.gate = EmulatorGate(emulator)
    app.state.emulator = emulator
    return app
