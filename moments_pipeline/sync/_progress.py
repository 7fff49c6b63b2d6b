"""Progress of a sync while it runs, handed to an optional callback (the engine never logs).

The engine calls ``progress(SyncProgress)`` once when sending starts (0 of the total) and after
every batch whose send is over, whatever its outcome. Counts only grow; ``settled`` never
exceeds ``total``. What to do with it (a log line every few seconds, a progress bar) is the
caller's business (``moments_pipeline.dagster._progress`` logs to the run's event log).

Constraints: the callback runs on the engine's event loop, between sends: it must be quick and
must not raise (an exception is swallowed here rather than stopping a sync half-way; progress
is a report, not part of the send path).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable

__all__ = ["ProgressCallback", "ProgressCounter", "SyncProgress"]


@dataclasses.dataclass(frozen=True, slots=True)
class SyncProgress:
    """Where a run's sending stands.

    Attributes:
        sent: Participants in requests answered as queued, or that may have been (ambiguous).
        settled: ``sent`` plus participants whose request is known not to have been processed.
        total: Participants this run has to send (after resuming and the identity re-check).
        requests: Add requests answered so far.
        elapsed_s: Seconds since sending started.
    """

    sent: int
    settled: int
    total: int
    requests: int
    elapsed_s: float


ProgressCallback = Callable[[SyncProgress], None]


class ProgressCounter:
    """The engine's tally, reporting each change to the callback."""

    def __init__(self, callback: ProgressCallback | None, now: Callable[[], float]) -> None:
        self._callback = callback
        self._now = now
        self._started = now()
        self.total = 0
        self.sent = 0
        self.settled = 0
        self.requests = 0

    def start(self, total: int) -> None:
        """Sending starts: ``total`` participants to go."""
        self._started = self._now()
        self.total = total
        self._report()

    def batch_done(self, size: int, *, sent: bool) -> None:
        """One batch's send is over (``sent``: it was, or may have been, queued)."""
        self.settled += size
        self.total = max(self.total, self.settled)  # re-sent ambiguous batches come on top
        if sent:
            self.sent += size
            self.requests += 1
        self._report()

    def _report(self) -> None:
        if self._callback is None:
            return
        progress = SyncProgress(
            sent=self.sent,
            settled=self.settled,
            total=self.total,
            requests=self.requests,
            elapsed_s=self._now() - self._started,
        )
        with contextlib.suppress(Exception):
            self._callback(progress)
