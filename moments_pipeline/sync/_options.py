"""``SyncOptions``: the knobs of one sync run."""

from __future__ import annotations

import dataclasses

from ._batching import MAX_BATCH_SIZE

LEDGER_SCOPE = "ledger"
"""The default lease scope: the whole ledger (the account's identity ledger)."""


@dataclasses.dataclass(frozen=True, slots=True)
class SyncOptions:
    """Knobs of a run. Defaults suit a real account (10 requests/s, 1000 per request).

    Attributes:
        batch_size: participants per request, 1..1000.
        max_concurrent_sends: requests in flight at once; the client's rate budget paces them,
            this keeps the pipe full (10 req/s x 150 ms latency needs only 2; default 8).
        resend_ambiguous: re-send a batch whose earlier send was ambiguous and for which no
            callback proves it was queued. Off by default because Infobip has no idempotency
            key; when on, REJECTED_PERSON_IN_FLOW on the re-sent batch counts as delivered.
        report_deadline_s: how long after the last request to wait for final reports;
            operations still PENDING then are recorded as PENDING.
        callback_grace_s: how long after a send to wait for its notifyUrl callback before
            polling for the report (and before declaring an ambiguous batch HELD).
        poll_timeout_s: longest single wait for one polled report.
        max_concurrent_polls: polled reports in flight at once (they share the rate budget).
        check_interval_s: how often callbacks in the ledger are looked at.
        flush_interval_s: how often buffered ledger writes (SENT marks, statuses) are flushed.
        plan_chunk_batches: batches planned and recorded per step of the planning pipeline.
        not_sent_retries: extra attempts for a request known not to have been processed.
        rejected_samples: rejected participants to keep in the result.
        freeze_gc: move the run's long-lived objects (the input, the plan, received reports)
            out of the cyclic garbage collector's sight while the run lasts (``gc.freeze``),
            so full collections do not rescan millions of objects and stall the sends
            (pauses of seconds at a million participants). Unfrozen when the run ends unless
            something else had frozen objects before. They are still freed by reference
            counting; only reference cycles wait for the end of the run.
        lease_scope: what the run lease covers. The default, one lease for the whole ledger,
            is what the identity re-check needs: Infobip merges profiles across all audiences
            of an account, and the ledger is the account's. A narrower scope (e.g.
            ``"<audience>/<partition>"``) lets other audiences sync meanwhile, at the price of
            that guarantee.
        lease_ttl_s: lifetime of the lease unless renewed (default 6 s). A crashed run's
            lease is taken over once it has expired, so a run after a ``kill -9`` waits at
            most this long. A run whose lease is not renewed within it stops sending.
        lease_renew_s: how often the heartbeat renews the lease; None (the default) is a
            quarter of ``lease_ttl_s`` (1.5 s), so three beats may fail before it expires. A
            claim needs the lease valid for at least this long still. See ``renew_interval_s``.
        lease_wait_s: how long to wait for a lease held by another run before failing with
            ``LeaseHeldError`` (0: fail at once).
        lease_poll_s: how often a waiting run tries the lease again.
    """

    batch_size: int = MAX_BATCH_SIZE
    max_concurrent_sends: int = 8
    resend_ambiguous: bool = False
    report_deadline_s: float = 600.0
    callback_grace_s: float = 10.0
    poll_timeout_s: float = 30.0
    max_concurrent_polls: int = 4
    check_interval_s: float = 0.2
    flush_interval_s: float = 1.0
    plan_chunk_batches: int = 10
    not_sent_retries: int = 2
    rejected_samples: int = 20
    freeze_gc: bool = True
    lease_scope: str = LEDGER_SCOPE
    lease_ttl_s: float = 6.0
    lease_renew_s: float | None = None
    lease_wait_s: float = 0.0
    lease_poll_s: float = 0.5

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be within 1..{MAX_BATCH_SIZE}: {self.batch_size}")
        if self.max_concurrent_sends < 1 or self.max_concurrent_polls < 1:
            raise ValueError("max_concurrent_sends and max_concurrent_polls must be >= 1")
        if self.lease_ttl_s <= 0 or self.lease_wait_s < 0 or self.lease_poll_s <= 0:
            raise ValueError("lease_ttl_s and lease_poll_s must be > 0, lease_wait_s >= 0")
        if not 0 < self.renew_interval_s <= self.lease_ttl_s / 2:
            raise ValueError("lease_renew_s must be > 0 and at most half of lease_ttl_s")
        if not self.lease_scope:
            raise ValueError("lease_scope must not be empty")

    @property
    def renew_interval_s(self) -> float:
        """Seconds between two heartbeats: ``lease_renew_s``, else a quarter of the lifetime."""
        return self.lease_renew_s if self.lease_renew_s is not None else self.lease_ttl_s / 4
