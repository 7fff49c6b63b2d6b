"""Which failures may be retried, and how long to wait before the next attempt.

Infobip has no idempotency key, so the decision depends on whether the request body may have
been processed:

- nothing was sent (connect error, connect/pool timeout) or the request was refused (429):
  safe for every operation;
- a read timeout, a dropped connection or a 5xx: safe only for GET and for the idempotent
  DELETE; for a non-idempotent POST it is ambiguous and is never retried here.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

import httpx

__all__ = ["Idempotency", "RetryPolicy", "nothing_was_sent"]


class Idempotency(enum.Enum):
    """How an operation behaves when repeated."""

    SAFE = "safe"
    """A read (GET): repeating it changes nothing."""
    IDEMPOTENT = "idempotent"
    """DELETE: a repeat may answer "not in the flow" (40006), which then means done."""
    UNSAFE = "unsafe"
    """A POST that queues work: a repeat may do it twice."""


# Exceptions raised before any byte of the request reached the server.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def nothing_was_sent(exc: httpx.TransportError) -> bool:
    """Return True when the failure certainly happened before the request was sent."""
    return isinstance(exc, _NOT_SENT)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded attempts with exponential backoff and full jitter.

    Attributes:
        max_attempts: Attempts in total, the first one included.
        initial_s: Upper bound of the first delay.
        max_s: Ceiling of any delay.
    """

    max_attempts: int = 5
    initial_s: float = 0.5
    max_s: float = 30.0

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        Full jitter spreads clients that failed together; ``Retry-After`` is a floor.
        """
        ceiling = min(self.max_s, self.initial_s * (2 ** (attempt - 1)))
        jittered = random.uniform(0.0, ceiling)
        if retry_after_s is not None:
            return max(retry_after_s, jittered)
        return jittered
