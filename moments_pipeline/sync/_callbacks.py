"""Which received notifyUrl reports the engine may apply to a batch.

A callback carries no signature: anyone who reaches the receiver's URL could POST a report with
a real callbackData (a batch id) and invented verdicts. The receiver's secret path token and
the ledger's ``accept_callback`` (nothing kept for unknown batches or a known operationId that
differs) keep most of that out; this is the engine's half, because the ledger may learn a
batch's operationId only after its report arrived (the add's answer is flushed in batches):

- a batch with an operationId (SENT) takes only reports of that operation; any other one is
  counted in ``SyncResult.callbacks_rejected`` (once per operation) and ignored;
- a HELD batch (ambiguous send, operationId unknown) takes a report's operationId only once
  Infobip confirms it: the report fetched by that operationId must carry this batch's id as
  callbackData in this flow. Re-fetching costs one GET of the account's 10/s, but only
  ambiguous sends ever need it, and it cannot be fooled by anything a forger can send; a
  claim Infobip does not confirm (404, other callbackData) is counted and ignored.

Constraint: no logging (``sync/`` never logs); the counts end in the ``SyncResult``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from ._protocols import OperationReport
from ._result import SyncResult

Fetch = Callable[[str], Awaitable[OperationReport | None]]
"""Fetch the report of one operationId from Infobip (None: no such operation)."""


class ReportScreen:
    """Sorts a run's received reports into those of the batch's operation and the rest.

    Args:
        result: the run's result, whose ``callbacks_rejected`` it counts into.
        campaign_id: the run's flow; a report of another flow is never applied.
    """

    def __init__(self, result: SyncResult, campaign_id: int) -> None:
        self._result = result
        self._campaign = campaign_id
        self._refused: set[tuple[str, str]] = set()

    def matching(
        self, batch_id: str, operation_id: str | None, reports: Sequence[OperationReport]
    ) -> list[OperationReport]:
        """The reports of ``operation_id``; every other operation is refused (counted once)."""
        kept = []
        for report in reports:
            if report.operation_id == operation_id and report.campaign_id == self._campaign:
                kept.append(report)
            else:
                self._refuse(batch_id, report.operation_id)
        return kept

    async def confirmed_claim(
        self, batch_id: str, reports: Sequence[OperationReport], fetch: Fetch
    ) -> str | None:
        """The operationId of a HELD batch that Infobip confirms among ``reports``, if any.

        Each operationId is asked about once per run; an unconfirmed one is refused (counted).
        A fetch that fails (Infobip unreachable) leaves the claim for the next look.
        """
        for report in reports:
            operation_id = report.operation_id
            if (batch_id, operation_id) in self._refused:
                continue
            if report.campaign_id != self._campaign:
                self._refuse(batch_id, operation_id)
                continue
            try:
                fetched = await fetch(operation_id)
            except Exception:  # noqa: BLE001, S112 - unknown, not refused: asked again later
                continue
            if (
                fetched is not None
                and fetched.operation_id == operation_id
                and fetched.callback_data == batch_id
                and fetched.campaign_id == self._campaign
            ):
                return operation_id
            self._refuse(batch_id, operation_id)
        return None

    def _refuse(self, batch_id: str, operation_id: str) -> None:
        key = (batch_id, operation_id)
        if key not in self._refused:
            self._refused.add(key)
            self._result.callbacks_rejected += 1
