"""``MomentsFlowDestination``: the ``FlowDestination`` over the Moments client.

Maps the client's error tree onto what the engine needs to know about a send:

- an operationId: SENT;
- ``AmbiguousSendError`` (read timeout, dropped connection or 5xx after the body left), and a
  bare ``ServerError`` should one ever escape: AMBIGUOUS, never re-sent here;
- ``RateLimitedError`` / ``TransportError`` after the client's own retries: the client
  guarantees nothing was queued, so NOT_SENT (safe to try again later);
- ``AuthError`` (401/403): AUTH_FAILED; nothing was queued and no other request can succeed,
  so the engine stops the run;
- any other ``MomentsError`` (400, 404): REFUSED, nothing was queued.

Also ``ledger_callback_handler``: the handler a ``CallbackReceiver`` calls for each notifyUrl
report, recording it in the ledger so this run or a later one can use it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from moments_pipeline.infobip import (
    AmbiguousSendError,
    AuthError,
    FlowParticipantsReportResponse,
    MomentsClient,
    MomentsError,
    NotFoundError,
    RateLimitedError,
    RawReport,
    ReportDeadlineExceeded,
    ServerError,
    TransportError,
)

from ._protocols import LedgerStore, OperationReport, SendKind, SendOutcome


def _reason(prefix: str, exc: MomentsError) -> str:
    # Codes and status only: the server's free text may echo request data.
    parts = [prefix, type(exc).__name__]
    if exc.status_code is not None:
        parts.append(f"HTTP_{exc.status_code}")
    code = exc.error_code or exc.message_id
    if code:
        parts.append(str(code))
    return ":".join(parts)


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
        self, campaign_id: int, participants: Sequence[Mapping[str, Any]], *, callback_data: str
    ) -> SendOutcome:
        """Send one add-flow-participants request; see the module docstring for the mapping."""
        try:
            response = await self.client.add_flow_participants(
                campaign_id, participants, notify_url=self._notify_url, callback_data=callback_data
            )
        except AmbiguousSendError as exc:
            return SendOutcome(SendKind.AMBIGUOUS, reason=_reason("AMBIGUOUS_SEND", exc.cause))
        except ServerError as exc:
            return SendOutcome(SendKind.AMBIGUOUS, reason=_reason("AMBIGUOUS_SEND", exc))
        except AuthError as exc:
            return SendOutcome(SendKind.AUTH_FAILED, reason=_reason("AUTH_FAILED", exc))
        except (RateLimitedError, TransportError) as exc:
            return SendOutcome(SendKind.NOT_SENT, reason=_reason("NOT_SENT", exc))
        except MomentsError as exc:
            return SendOutcome(SendKind.REFUSED, reason=_reason("REFUSED", exc))
        return SendOutcome(SendKind.SENT, operation_id=response.operation_id)

    async def fetch_report(
        self, campaign_id: int, operation_id: str, *, timeout_s: float
    ) -> OperationReport | None:
        """Poll with the client's ``wait_for_report``; the last report if still PENDING."""
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
        return report_from_model(model)


def ledger_callback_handler(ledger: LedgerStore) -> Callable[[RawReport], None]:
    """A ``CallbackReceiver`` raw handler that records every report in the ledger.

    Reports without callbackData are not ours (every engine request carries its batch id) and
    are ignored. Use as ``CallbackReceiver(raw_handler=ledger_callback_handler(ledger))``.

    The receiver runs in a thread of the sending process: building a pydantic model and a
    thousand verdict objects per report there took the GIL from the loop that paces the sends.
    A ledger with ``record_callback_json`` (``SqlLedgerStore``) therefore stores the report's
    checked JSON text as it came (the spec's field names, the enum's in-flow reason); other
    ledgers get an ``OperationReport`` parsed once from it.
    """
    record_json = getattr(ledger, "record_callback_json", None)

    def record(report: RawReport) -> None:
        if not report.callback_data:
            return
        if record_json is not None:
            record_json(report.callback_data, report.operation_id, report.campaign_id, report.text)
        else:
            payload = orjson.loads(report.body)
            ledger.record_callback(report.callback_data, OperationReport.from_payload(payload))

    return record
