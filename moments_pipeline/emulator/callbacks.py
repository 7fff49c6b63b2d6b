"""Delivery of operation reports to ``notifyUrl``, with retries and exponential backoff.

The HTTP client is built from an injectable httpx transport so in-process tests receive the
callbacks in an ASGI app of their own. A delivery counts as done on a 2xx answer; anything
else (non-2xx, transport error) is retried ``retries`` times, waiting ``backoff_s`` then
doubling. Every attempt is recorded for the inspection API.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

__all__ = ["CallbackAttempt", "CallbackSender"]


@dataclass(frozen=True, slots=True)
class CallbackAttempt:
    """One POST of a report (``status`` None when the transport failed)."""

    operation_id: str
    url: str
    attempt: int
    status: int | None
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready view."""
        return {
            "operationId": self.operation_id,
            "url": self.url,
            "attempt": self.attempt,
            "status": self.status,
            "error": self.error,
        }


@dataclass
class CallbackSender:
    """POSTs reports with retries.

    Attributes:
        retries: Extra attempts after the first.
        backoff_s: Delay before the first retry (doubled each time).
        timeout_s: Timeout of one attempt.
        transport: httpx transport to use (None: real network, loopback in practice).
        attempts: Every attempt made, in order.
    """

    retries: int
    backoff_s: float
    timeout_s: float
    transport: httpx.AsyncBaseTransport | None = None
    attempts: list[CallbackAttempt] = field(default_factory=list)

    async def deliver(self, url: str, report: dict[str, Any]) -> bool:
        """POST ``report`` to ``url`` until a 2xx answer or retries run out."""
        body = orjson.dumps(report)
        headers = {"content-type": "application/json"}
        delay = self.backoff_s
        op = str(report.get("operationId"))
        async with httpx.AsyncClient(transport=self.transport, timeout=self.timeout_s) as client:
            for attempt in range(1, self.retries + 2):
                try:
                    answer = await client.post(url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    self.attempts.append(
                        CallbackAttempt(op, url, attempt, None, type(exc).__name__)
                    )
                else:
                    self.attempts.append(
                        CallbackAttempt(op, url, attempt, answer.status_code, None)
                    )
                    if answer.is_success:
                        return True
                if attempt <= self.retries:
                    await asyncio.sleep(delay)
                    delay *= 2
        return False
