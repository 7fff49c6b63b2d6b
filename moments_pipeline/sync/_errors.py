"""Errors that stop a sync run. Messages name runs, scopes and HTTP codes, never a secret."""

from __future__ import annotations

import datetime as dt


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
    """The run could not renew its lease (another run took it over); sending stopped."""

    def __init__(self, scope: str, holder: str) -> None:
        self.scope = scope
        self.holder = holder
        super().__init__(
            f"sync run {holder!r} lost the ledger lease {scope!r} (not renewed in time, and "
            "another run took it over); it stopped sending. Batches already sent are recorded."
        )


class SyncAuthError(SyncStoppedError):
    """Infobip refused the credentials (401/403): the run stopped, nothing more was sent.

    Attributes:
        reason: the machine-readable refusal (exception type, HTTP status, error code).
        not_sent: participants left unsent (their batches stay PLANNED for a later run).
    """

    def __init__(self, reason: str, not_sent: int) -> None:
        self.reason = reason
        self.not_sent = not_sent
        super().__init__(
            f"Infobip refused the API key ({reason}); the sync stopped with {not_sent} "
            "participant(s) not sent. Nothing was queued by the refused request. Check the "
            "key and its scopes (INFOBIP_API_KEY), then run again."
        )
