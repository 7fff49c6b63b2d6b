"""The ``Emulator``: all state of one emulated Infobip account, and its clock.

Handlers reach it through ``request.app.state.emulator``. It owns the People store, the flows
and their memberships, the add-participants operations, the forms state (filled by the forms
routes), the request log, recorded exchanges, fault control and the rate limiter. Mutations
that must survive a restart go through the journal (``persistence``) when a state file is set.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from .clock import Clock, ManualClock, SystemClock
from .people import PeopleStore
from .settings import EmulatorSettings

__all__ = ["Emulator", "Exchange"]


@dataclass(frozen=True, slots=True)
class Exchange:
    """One recorded HTTP exchange (the Authorization header is never kept).

    Attributes:
        method: HTTP method.
        path: Request path.
        query_string: Raw query string (decoded as latin-1).
        request_headers: Request headers, lower-cased names, without Authorization.
        request_body: Request body bytes.
        status: Response status.
        response_headers: Response headers, lower-cased names.
        response_body: Response body bytes.
        operation: Spec operationId of the request (None for paths outside the spec).
    """

    method: str
    path: str
    query_string: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int
    response_headers: dict[str, str]
    response_body: bytes
    operation: str | None


class Emulator:
    """State and behaviour of one emulated account.

    Args:
        settings: The emulator settings.
        clock: Time source (default: the wall clock).
    """

    def __init__(self, settings: EmulatorSettings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.people = PeopleStore(self.clock.now)
        self.forms: dict[str, dict[str, Any]] = {}
        self.form_submissions: list[dict[str, Any]] = []
        self.form_views: dict[str, int] = {}
        self.exchanges: list[Exchange] = []
        self.request_log: deque[dict[str, Any]] = deque(maxlen=settings.request_log_size)

    def now(self) -> float:
        """Return the emulator's current time (Unix seconds)."""
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        """Advance a manual clock.

        Raises:
            TypeError: The clock is not a ``ManualClock``.
        """
        if not isinstance(self.clock, ManualClock):
            raise TypeError("the emulator's clock is not a ManualClock")
        self.clock.advance(seconds)

    def __repr__(self) -> str:
        return f"Emulator(profiles={len(self.people.profiles)}, clock={self.clock!r})"
