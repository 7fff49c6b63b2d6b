"""When a paced request counts as issued: once its body is written, not when its slot is granted.

The rate budget's window holds request ISSUE times, and an outstanding reservation counts as an
issue happening now (see ``_ratelimit``). A request is not on the wire when ``_call`` hands it
to httpx: connection set-up, encoding and, above all, a stalled event loop (a long GC pause,
another thread holding the GIL) can hold its bytes for hundreds of milliseconds while later
slots are granted against the recorded time. The server then sees the stalled request land
next to later ones, 11 in its second, and answers 429. So the reservation stays open until
httpcore reports that the request body has been written (its ``trace`` extension), and that
moment is the issue time: a stall anywhere before the write only delays the issue, it can
never bunch it with later slots.

A transport that reports no write events (an in-process test transport, say) is settled when
the attempt ends: as issued at the attempt's start if anything may have been sent, else the
reservation is given back.

Constraints: exactly one of ``issued`` / ``cancel_reservation`` per reservation, whatever
happens (the ``settle`` call in a ``finally``).
"""

from __future__ import annotations

from typing import Any

from ._ratelimit import RateBudget

__all__ = ["IssueMark"]

# httpcore's trace events are "<prefix>.send_request_body.complete" (prefix http11 or http2).
_WRITTEN = "send_request_body.complete"


class IssueMark:
    """One attempt's reservation, turned into an issue when its body is written."""

    __slots__ = ("_budget", "_done", "_started")

    def __init__(self, budget: RateBudget) -> None:
        self._budget = budget
        self._done = False
        self._started = budget.now()

    @property
    def extensions(self) -> dict[str, Any]:
        """The request extensions (for httpx) that report the write to this mark."""
        return {"trace": self._trace}

    async def _trace(self, event: str, info: dict[str, Any]) -> None:
        if not self._done and event.endswith(_WRITTEN):
            self._done = True
            self._budget.issued()

    def settle(self, *, maybe_sent: bool) -> None:
        """End the reservation if the transport never said the body was written."""
        if self._done:
            return
        self._done = True
        if maybe_sent:
            self._budget.issued(at=self._started)
        else:
            self._budget.cancel_reservation()
