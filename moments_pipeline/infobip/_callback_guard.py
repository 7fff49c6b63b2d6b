"""What keeps the notifyUrl receiver safe on a public address: a bounded body, bounded counts.

The receiver listens where anyone can POST, so nothing a sender controls may make it hold
more than a fixed amount:

- :func:`read_limited_body` reads a request body chunk by chunk and gives up as soon as it
  passes the limit (:class:`BodyTooLarge`, answered 413). A declared ``Content-Length`` above
  the limit is refused before a byte is read; a lying, absent or chunked length changes
  nothing, since the bytes themselves are counted. At most the limit plus one chunk is held
  (uvicorn hands chunks of at most its 64 KiB read-ahead).
- :class:`CallbackStats` counts what happened to each request in a fixed set of integers
  (bad token, too large, invalid, and the handler's :class:`CallbackOutcome`): a flood of
  forged or foreign reports costs a counter increment, never a stored row or a kept object.

Nothing here knows a ledger: a handler says what it did with a report by returning a
:class:`CallbackOutcome`, and the receiver only counts it.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass, field

from starlette.requests import Request

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "BodyTooLarge",
    "CallbackOutcome",
    "CallbackStats",
    "read_limited_body",
]

DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024
"""2 MiB. A report of 1000 participants (the most one operation has) is about 100-200 KB."""


class CallbackOutcome(enum.StrEnum):
    """What a raw handler did with a report (returned by the handler; None means ACCEPTED)."""

    ACCEPTED = "accepted"
    """Kept for use (it matches the operation recorded for its callbackData, or waits for
    that operation to be known)."""
    REJECTED = "rejected"
    """Ours by callbackData but not applied: its operationId is not the batch's."""
    UNKNOWN = "unknown"
    """Its callbackData names nothing the handler knows (not a batch of this ledger)."""


class BodyTooLarge(Exception):
    """The request body is (or claims to be) larger than the receiver accepts."""


@dataclass(slots=True)
class CallbackStats:
    """Counts of the receiver's requests by fate; a fixed set of integers, thread-safe."""

    bad_token: int = 0
    too_large: int = 0
    invalid: int = 0
    handler_failed: int = 0
    accepted: int = 0
    rejected: int = 0
    unknown: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str) -> int:
        """Count one request under ``name`` (a field of this class); returns the new count."""
        with self._lock:
            value: int = getattr(self, name) + 1
            setattr(self, name, value)
            return value

    def as_dict(self) -> dict[str, int]:
        """The counts, by name."""
        with self._lock:
            return {
                "bad_token": self.bad_token,
                "too_large": self.too_large,
                "invalid": self.invalid,
                "handler_failed": self.handler_failed,
                "accepted": self.accepted,
                "rejected": self.rejected,
                "unknown": self.unknown,
            }


def should_log(count: int) -> bool:
    """Log the 1st, 2nd, 4th, 8th, ... occurrence: a flood of bad requests cannot flood the log."""
    return count & (count - 1) == 0


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The request body, read as it streams in, refused as soon as it passes ``limit`` bytes.

    Raises:
        BodyTooLarge: the declared Content-Length or the bytes received exceed ``limit``.
        ValueError: the Content-Length header is not a number.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise ValueError("Content-Length is not a number")
        if int(declared) > limit:
            raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge  # stop reading: the rest is never pulled from the connection
        chunks.append(chunk)
    return b"".join(chunks)
