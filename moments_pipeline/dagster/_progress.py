"""Progress lines of a sync in the run's event log: sent/total, request rate, ETA.

The engine reports a ``SyncProgress`` after every batch (``sync/_progress``); at 10 requests/s
that is ten calls a second, too many for an event log. :class:`ProgressLog` writes a line at
most every ``every_s`` seconds (5 by default), plus the first and the last one, e.g.::

    cart_abandoners: sent 42000/100000 participants (42 requests), 9.9 req/s, ETA 59 s

The rate is requests answered over time since sending started; the ETA is the participants
left at the participants-per-second seen so far. Counts only: never an identifier.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from moments_pipeline.sync import SyncProgress

__all__ = ["ProgressLog", "progress_line"]


def progress_line(label: str, progress: SyncProgress) -> str:
    """The line shown for ``progress`` (pure, for tests and the demo)."""
    elapsed = progress.elapsed_s
    rate = progress.requests / elapsed if elapsed > 0 else 0.0
    left = progress.total - progress.settled
    if left <= 0:
        eta = "done"
    elif progress.settled and elapsed > 0:
        eta = f"ETA {left / (progress.settled / elapsed):.0f} s"
    else:
        eta = "ETA unknown"
    return (
        f"{label}: sent {progress.sent}/{progress.total} participants "
        f"({progress.requests} requests), {rate:.1f} req/s, {eta}"
    )


class ProgressLog:
    """A ``ProgressCallback`` writing at most one line per ``every_s`` to ``log``.

    Args:
        log: Where lines go (``context.log.info`` in a step).
        label: Prefix of each line (the audience name).
        every_s: Least seconds between two lines (the first and the final line always go).
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        log: Callable[[str], object],
        label: str,
        *,
        every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._label = label
        self._every_s = every_s
        self._clock = clock
        self._last: float | None = None
        self._final_written = False
        self.lines = 0

    def __call__(self, progress: SyncProgress) -> None:
        now = self._clock()
        final = progress.settled >= progress.total
        if self._last is not None and now - self._last < self._every_s and not final:
            return
        if final and self._last is not None and self._final_written:
            return
        self._last = now
        self._final_written = final
        self.lines += 1
        self._log(progress_line(self._label, progress))
