"""Errors that stop a sync run. Messages name runs, scopes, flows and HTTP codes, never a secret.

The tree (every class is a ``SyncStoppedError``; the ledger keeps what the run did before)::

    SyncStoppedError
    ├── LeaseHeldError          another run holds the lease: nothing was sent
    ├── LeaseLostError          the lease was not renewed in time: sending stopped
    └── DestinationStoppedError Infobip answered that no request of this run can succeed
        ├── FlowUnavailableError  404 (40401): the flow is missing or not active
        ├── AccountRefusedError   401/403: the API key is wrong, revoked or lacks the scope
        │                         (``SyncAuthError`` is its former name, kept as an alias)
        └── CreditsExhaustedError a report said REJECTED_NOT_ENOUGH_CREDITS

A ``DestinationStoppedError`` is raised at the first such answer. The refused requests queued
nothing (a 401/403/404 proves it), so their batches stay PLANNED, as do batches not sent yet:
a later run sends them. ``not_sent`` counts the participants left so.

``stop_for_outcome`` and ``stop_for_reports`` are the engine's classification of a send's
answer and of report verdicts; a poll refused for the key raises ``AccountRefusedError`` from
the destination adapter itself (this module, like the engine, knows no client).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from ._protocols import OperationReport, SendKind, SendOutcome

NOT_ENOUGH_CREDITS = "REJECTED_NOT_ENOUGH_CREDITS"
"""The spec's ErrorStatusReason for an account out of credits (a per-participant verdict)."""


def _when(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC).isoformat(timespec="seconds")


class SyncStoppedError(RuntimeError):
    """Root of the errors that stop a run; the ledger keeps what the run did before."""


class LeaseHeldError(SyncStoppedError):
    """Another run holds the lease of the scope this run needs; nothing was sent.

    Attributes:
        scope: the lease scope.
        holder: the run id of the run holding it.
        description: what that run syncs.
        expires_at: when its lease expires unless renewed (epoch seconds).
    """

    def __init__(
        self, scope: str, holder: str, description: str, expires_at: float, waited_s: float
    ) -> None:
        self.scope = scope
        self.holder = holder
        self.description = description
        self.expires_at = expires_at
        super().__init__(
            f"another sync run holds the ledger lease {scope!r}: run {holder!r} ({description}), "
            f"lease valid until {_when(expires_at)} unless renewed; waited {waited_s:.1f} s. "
            "Nothing was sent. Two runs sharing a ledger must not sync at the same time (they "
            "would send people twice or merge profiles); retry once that run has finished, or "
            "raise SyncOptions.lease_wait_s."
        )


class LeaseLostError(SyncStoppedError):
    """The run's lease was not renewed in time (or another run has it); sending stopped."""

    def __init__(self, scope: str, holder: str) -> None:
        self.scope = scope
        self.holder = holder
        super().__init__(
            f"sync run {holder!r} lost the ledger lease {scope!r} (its heartbeat did not renew "
            "it in time, or another run took it over); it stopped sending rather than send "
            "under an expired lease. Batches already sent are recorded; run again."
        )


class DestinationStoppedError(SyncStoppedError):
    """Infobip answered that no request of this run can succeed; the run stopped at once.

    Attributes:
        campaign_id: the flow the run was syncing.
        reason: the machine-readable answer (exception type, HTTP status, error code), or the
            report's error reason; never the server's free text, which may echo request data.
        not_sent: participants left unsent (their batches stay PLANNED for a later run).
    """

    def __init__(self, campaign_id: int, reason: str, not_sent: int = 0) -> None:
        self.campaign_id = campaign_id
        self.reason = reason
        self.not_sent = not_sent
        super().__init__(self._describe())

    def _describe(self) -> str:
        raise NotImplementedError

    def with_not_sent(self, not_sent: int) -> DestinationStoppedError:
        """The same stop, counting the participants it left unsent."""
        return type(self)(self.campaign_id, self.reason, not_sent)

    def _tail(self) -> str:
        return (
            f"the sync stopped with {self.not_sent} participant(s) not sent; they stay pending "
            "and a later run sends them."
        )


class FlowUnavailableError(DestinationStoppedError):
    """404 on add-flow-participants (40401): the flow does not exist or is not active."""

    def _describe(self) -> str:
        return (
            f"flow {self.campaign_id} is missing or not active on Infobip ({self.reason}): "
            "nothing was queued by the refused request, and "
            + self._tail()
            + " Check the audience's flow.campaign_id and that the flow is launched."
        )


class AccountRefusedError(DestinationStoppedError):
    """Infobip refused the credentials (401/403): the run stopped, nothing more was sent."""

    def _describe(self) -> str:
        return (
            f"Infobip refused the API key ({self.reason}) syncing flow {self.campaign_id}: "
            "nothing was queued by the refused request, and "
            + self._tail()
            + " Check the key and its scopes (INFOBIP_API_KEY), then run again."
        )


SyncAuthError = AccountRefusedError
"""Former name of ``AccountRefusedError``."""


class CreditsExhaustedError(DestinationStoppedError):
    """A report said REJECTED_NOT_ENOUGH_CREDITS: the account is out of credits."""

    def _describe(self) -> str:
        return (
            f"the Infobip account is out of credits ({self.reason}) syncing flow "
            f"{self.campaign_id}: participants already reported so are recorded REJECTED, and "
            + self._tail()
            + " Top up the account, then run again."
        )


def stop_for_outcome(outcome: SendOutcome, campaign_id: int) -> DestinationStoppedError | None:
    """The stop a send's answer calls for, or None (the run goes on)."""
    reason = outcome.reason or outcome.kind.value
    if outcome.kind is SendKind.AUTH_FAILED:
        return AccountRefusedError(campaign_id, reason)
    if outcome.kind is SendKind.FLOW_UNAVAILABLE:
        return FlowUnavailableError(campaign_id, reason)
    return None


def stop_for_reports(
    reports: Iterable[OperationReport], campaign_id: int
) -> DestinationStoppedError | None:
    """``CreditsExhaustedError`` when any verdict says REJECTED_NOT_ENOUGH_CREDITS; else None."""
    for report in reports:
        if any(v.error_reason == NOT_ENOUGH_CREDITS for v in report.participants):
            return CreditsExhaustedError(campaign_id, NOT_ENOUGH_CREDITS)
    return None
