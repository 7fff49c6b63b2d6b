"""Polls a participants report until no participant is PENDING, within a deadline.

Constraints: each poll is an ordinary client call, so it spends the account's shared rate
budget like any other request; the clock and sleep are injected so tests need no real waiting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ._errors import ReportDeadlineExceeded
from ._models import FlowParticipantsReportResponse
from ._ratelimit import Clock, Sleep

__all__ = ["poll_report"]


async def poll_report(
    fetch: Callable[[], Awaitable[FlowParticipantsReportResponse]],
    *,
    deadline_s: float,
    initial_interval_s: float = 1.0,
    max_interval_s: float = 30.0,
    backoff_factor: float = 2.0,
    clock: Clock,
    sleep: Sleep,
) -> FlowParticipantsReportResponse:
    """Fetch the report until it is complete, doubling the wait between polls.

    Args:
        fetch: Fetches the report once.
        deadline_s: Give up this many seconds after the first poll started.
        initial_interval_s: Wait after the first incomplete report.
        max_interval_s: Ceiling of the wait between polls.
        backoff_factor: Growth of the wait after each incomplete report.
        clock: Monotonic clock in seconds.
        sleep: Async sleep matching ``clock``.

    Returns:
        The first report without PENDING participants.

    Raises:
        ReportDeadlineExceeded: The deadline passed; ``last_report`` holds the last report.
        MomentsError: A poll failed in a way the client does not retry (e.g. 404).
    """
    if deadline_s <= 0 or initial_interval_s <= 0 or max_interval_s < initial_interval_s:
        raise ValueError("need deadline_s > 0 and 0 < initial_interval_s <= max_interval_s")
    started = clock()
    interval = initial_interval_s
    polls = 0
    while True:
        report = await fetch()
        polls += 1
        if report.is_complete:
            return report
        remaining = deadline_s - (clock() - started)
        if remaining <= 0:
            raise ReportDeadlineExceeded(
                f"report of operation {report.operation_id} still has {report.pending} PENDING "
                f"participant(s) after {deadline_s:g} s ({polls} polls)",
                last_report=report,
                operation="get-flow-participants-added-report",
            )
        # Poll once more right at the deadline rather than giving up early.
        await sleep(min(interval, remaining))
        interval = min(interval * backoff_factor, max_interval_s)
