"""The ASGI app factory of the emulator.

``create_app`` builds a Starlette app whose ``app.state.emulator`` is the ``Emulator``; the
Moments API routes, the forms routes (from the forms engineer's ``forms`` module) and the
``/_emulator/`` inspection routes are mounted on it.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .clock import Clock
from .errors import json_response
from .settings import EmulatorSettings
from .state import Emulator

__all__ = ["create_app"]


def _form_routes() -> list[BaseRoute]:
    # The forms module is written in parallel by the forms engineer; until it lands the app
    # must stay importable, so only its absence (not an error inside it) is tolerated.
    try:
        from . import forms  # type: ignore[attr-defined]
    except ModuleNotFoundError as exc:
        if exc.name == f"{__package__}.forms":
            return []
        raise
    routes: list[BaseRoute] = forms.form_routes()
    return routes


async def _people(request: Request) -> Response:
    emulator: Emulator = request.app.state.emulator
    return json_response([p.to_dict() for p in emulator.people.profiles.values()])


def create_app(
    settings: EmulatorSettings | None = None, *, clock: Clock | None = None
) -> Starlette:
    """Return the emulator as a Starlette app.

    Args:
        settings: Emulator settings (defaults: ``EmulatorSettings()``).
        clock: Time source (default: the wall clock; tests pass a ``ManualClock``).
    """
    emulator = Emulator(settings or EmulatorSettings(), clock)
    routes: list[BaseRoute] = [Route("/_emulator/people", _people, methods=["GET"])]
    routes.extend(_form_routes())
    app = Starlette(routes=routes)
    app.state.emulator = emulator
    return app
