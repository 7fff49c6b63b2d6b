"""``MomentsFlowDestination``: the ``FlowDestination`` over the Moments client.

Maps the client's error tree onto what the engine needs to know about a send:

- an operationId: SENT;
- ``AmbiguousSendError`` (read timeout, dropped connection or 5xx after the body left), and a
  bare ``ServerError`` should one ever escape: AMBIGUOUS, never re-sent here;
- ``RateLimitedError`` / ``TransportError`` after the client's own retries: the client
  guarantees nothing was queued, so NOT_SENT (safe to try again later);
- ``AuthError`` (401/403): AUTH_FAILED; nothing was queued and no other request can succeed,
  so the engine stops the run;
- ``NotFoundError`` (404, errorCode 40401: the flow is missing or not active): FLOW_UNAVAILABLE,
  nothing was queued and no other request can succeed, so the engine stops the run;
- any other ``MomentsError`` (400): REFUSED, nothing was queued.

Also ``ledger_callback_handler``: the handler a ``CallbackReceiver`` calls for each notifyUrl
report, offering it to the ledger (kept only when it can be its batch's) so this run or a later
one can use it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from moments_pipeline.infobip import (
    AmbiguousSendError,
    AuthError,
    CallbackOutcome,
    FlowParticipantsReportResponse,
    MomentsClient,
    MomentsError,
    NotFoundError,
    RateLimitedError,
    RawReport,
    ReportDeadlineExceeded,
    ServerError,
    TransportError,
    check_api_key,
    error_summary,
)

from ._errors import AccountRefusedError
from ._protocols import (
    CallbackVerdict,
    LedgerStore,
    OperationReport,
    SendKind,
    SendOutcome,
    WireGate,
)


def _reason(prefix: str, exc: MomentsError) -> str:
    # Codes and status only (``error_summary``): the server's free text may echo request data.
    return f"{prefix}:{error_summary(exc)}"


def report_from_model(model: FlowParticipantsReportResponse) -> OperationReport:
    """Convert the client's report model to the engine's ``OperationReport``."""
    return OperationReport.from_payload(model.model_dump(mode="json", by_alias=True))


class MomentsFlowDestination:
    """Sends batches with a ``MomentsClient`` and fetches their reports.

    Args:
        client: an open client; its rate budget and ``max_in_flight`` pace the engine.
        notify_url: the callback receiver's URL (``CallbackServer.notify_url``), or None to
            rely on polling only.
        poll_initial_interval_s: first wait between two polls of one report.
    """

    def __init__(
        self,
        client: MomentsClient,
        *,
        notify_url: str | None = None,
        poll_initial_interval_s: float = 1.0,
    ) -> None:
        self.client = client
        self._notify_url = notify_url
        self._poll_interval = poll_initial_interval_s

    def __repr__(self) -> str:
        # notifyUrl holds the receiver's secret path token: never shown.
        receiver = "configured" if self._notify_url else "none"
        return f"MomentsFlowDestination(client={self.client!r}, notify_url=<{receiver}>)"

    @property
    def notify_url(self) -> str | None:
        """The notifyUrl sent with each request, or None."""
        return self._notify_url

    async def send(
        self,
        campaign_id: int,
        participants: Sequence[Mapping[str, Any]],
        *,
        callback_data: str,
        gate: WireGate | None = None,
    ) -> SendOutcome:
        """Send one add-flow-participants request; see the module docstring for the mapping.

        ``gate`` goes to the client as is (its ``SendGate``): the engine's durable "on the
        wire" mark after each attempt's rate slot, and its "not processed" mark.
        """
        try:
            response = await self.client.add_flow_participants(
                campaign_id,
                participants,
                notify_url=self._notify_url,
                callback_data=callback_data,
                gate=gate,
            )
        except AmbiguousSendError as exc:
            return SendOutcome(SendKind.AMBIGUOUS, reason=_reason("AMBIGUOUS_SEND", exc.cause))
        except ServerError as exc:
            return SendOutcome(SendKind.AMBIGUOUS, reason=_reason("AMBIGUOUS_SEND", exc))
        except AuthError as exc:
            return SendOutcome(SendKind.AUTH_FAILED, reason=_reason("AUTH_FAILED", exc))
        except (RateLimitedError, TransportError) as exc:
            return SendOutcome(SendKind.NOT_SENT, reason=_reason("NOT_SENT", exc))
        except NotFoundError as exc:  # 40401: no flow to add anyone to, nothing was queued
            return SendOutcome(SendKind.FLOW_UNAVAILABLE, reason=_reason("FLOW_UNAVAILABLE", exc))
        except MomentsError as exc:
            return SendOutcome(SendKind.REFUSED, reason=_reason("REFUSED", exc))
        return SendOutcome(SendKind.SENT, operation_id=response.operation_id)

    async def check_access(self, campaign_id: int) -> SendOutcome | None:
        """One cheap authenticated read (``check_api_key``): AUTH_FAILED for a refused key.

        FLOW_UNAVAILABLE should the answer carry the flow's 40401 (the spec has no flow read).

        None when the key was accepted, or when the answer cannot tell (a 5xx, no connection):
        the engine asks this only when it has nothing to send, and such a run changes nothing.
        """
        check = await check_api_key(self.client, campaign_id)
        if check.key_accepted is False:
            return SendOutcome(SendKind.AUTH_FAILED, reason=f"AUTH_FAILED:{check.reason}")
        if check.flow_unavailable:
            return SendOutcome(SendKind.FLOW_UNAVAILABLE, reason=f"FLOW_UNAVAILABLE:{check.reason}")
        return None

    async def fetch_report(
        self, campaign_id: int, operation_id: str, *, timeout_s: float
    ) -> OperationReport | None:
        """Poll with the client's ``wait_for_report``; the last report if still PENDING.

        Raises:
            AccountRefusedError: 401/403, the key is refused (the engine stops the run).
        """
        try:
            model = await self.client.wait_for_report(
                campaign_id,
                operation_id,
                deadline_s=max(timeout_s, 0.001),
                initial_interval_s=min(self._poll_interval, max(timeout_s, 0.001)),
                max_interval_s=max(self._poll_interval * 8, self._poll_interval),
            )
        except ReportDeadlineExceeded as exc:
            last = exc.last_report
            return report_from_model(last) if last is not None else None
        except NotFoundError:
            return None
        except AuthError as exc:  # no later request can succeed either: the engine stops
            raise AccountRefusedError(campaign_id, _reason("AUTH_FAILED", exc)) from None
        return report_from_model(model)


_OUTCOMES = {
    CallbackVerdict.STORED: CallbackOutcome.ACCEPTED,
    CallbackVerdict.PENDING: CallbackOutcome.ACCEPTED,
    CallbackVerdict.MISMATCH: CallbackOutcome.REJECTED,
    CallbackVerdict.UNKNOWN: CallbackOutcome.UNKNOWN,
}


def ledger_callback_handler(ledger: LedgerStore) -> Callable[[RawReport], CallbackOutcome]:
    """A ``CallbackReceiver`` raw handler that offers every report to the ledger.

    Use as ``CallbackReceiver(raw_handler=ledger_callback_handler(ledger))``. The ledger keeps
    a report only if its callbackData is a batch and its operationId can be that batch's
    (``LedgerStore.accept_callback``); the answer goes back to the receiver as a
    ``CallbackOutcome``, which it counts and logs (this package never logs). Reports without
    callbackData are not ours (every engine request carries its batch id): UNKNOWN.

    The receiver runs in a thread of the sending process: building a pydantic model and a
    thousand verdict objects per report there took the GIL from the loop that paces the sends,
    so the ledger gets the report's checked JSON text as it came (the spec's field names, the
    enum's in-flow reason).
    """

    def record(report: RawReport) -> CallbackOutcome:
        if not report.callback_data:
            return CallbackOutcome.UNKNOWN
        verdict = ledger.accept_callback(
            report.callback_data, report.operation_id, report.campaign_id, report.text
        )
        return _OUTCOMES[verdict]

    return record
