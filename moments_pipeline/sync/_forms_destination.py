"""``MomentsFormsDestination``: submit-form-data and increment-view-count over the client.

Maps the client's error tree onto what the forms engine needs to know about one send, as
``_destination`` does for flows:

- ``{"status": "OK"}``: SENT;
- ``AmbiguousSendError`` (timeout, dropped connection or 5xx after the body left), or anything
  unexpected: AMBIGUOUS, never re-sent here;
- ``RateLimitedError`` / ``TransportError`` after the client's retries: NOT_SENT (nothing was
  processed, a later run sends it);
- 401: AUTH_FAILED (the key); 403 or 404: FORM_UNAVAILABLE (the form is not ACTIVE, or gone:
  the spec's 403 says "Form is not submittable using the API"); both stop the run;
- any other 4xx (400: the form's validation, or resubmitEnabled false): REFUSED, nothing was
  processed.

Reasons carry codes and HTTP status only (``error_summary``), never the server's free text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from moments_pipeline.infobip import (
    AmbiguousSendError,
    AuthError,
    MomentsClient,
    MomentsError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
    error_summary,
)

from ._protocols import SendKind, SendOutcome, WireGate


@runtime_checkable
class FormsDestination(Protocol):
    """Where form submissions and views go (the Moments Forms API in production)."""

    async def submit(
        self,
        form_id: str,
        data: Mapping[str, Any],
        *,
        source: str | None,
        campaign: str | None,
        gate: WireGate,
    ) -> SendOutcome:
        """One submit-form-data; ``gate`` as for ``FlowDestination.send``; never re-sent."""
        ...

    async def view(self, form_id: str, *, gate: WireGate) -> SendOutcome:
        """One increment-view-count; ``gate`` as for ``FlowDestination.send``; never re-sent."""
        ...


def outcome_of(exc: BaseException) -> SendOutcome:
    """What an exception of one forms send says about its fate."""
    if not isinstance(exc, MomentsError):
        return SendOutcome(SendKind.AMBIGUOUS, reason=f"AMBIGUOUS:{type(exc).__name__}")
    reason = error_summary(exc)
    if isinstance(exc, AmbiguousSendError | ServerError):
        return SendOutcome(SendKind.AMBIGUOUS, reason=f"AMBIGUOUS:{reason}")
    if isinstance(exc, RateLimitedError | TransportError):
        return SendOutcome(SendKind.NOT_SENT, reason=f"NOT_SENT:{reason}")
    if (isinstance(exc, AuthError) and exc.status_code == 403) or isinstance(exc, NotFoundError):
        return SendOutcome(SendKind.FORM_UNAVAILABLE, reason=reason)
    if isinstance(exc, AuthError):
        return SendOutcome(SendKind.AUTH_FAILED, reason=reason)
    return SendOutcome(SendKind.REFUSED, reason=reason)


class MomentsFormsDestination:
    """``FormsDestination`` over a ``MomentsClient`` (paced by the account's rate budget)."""

    def __init__(self, client: MomentsClient) -> None:
        self._client = client

    async def submit(
        self,
        form_id: str,
        data: Mapping[str, Any],
        *,
        source: str | None,
        campaign: str | None,
        gate: WireGate,
    ) -> SendOutcome:
        """Submit one row (JSON body)."""
        try:
            await self._client.submit_form_data(
                form_id, data, source=source, form_campaign=campaign, gate=gate
            )
        except Exception as exc:  # noqa: BLE001 - every failure is classified, none re-sent
            return outcome_of(exc)
        return SendOutcome(SendKind.SENT)

    async def view(self, form_id: str, *, gate: WireGate) -> SendOutcome:
        """Count one view."""
        try:
            await self._client.increment_view_count(form_id, gate=gate)
        except Exception as exc:  # noqa: BLE001 - every failure is classified, none re-sent
            return outcome_of(exc)
        return SendOutcome(SendKind.SENT)
