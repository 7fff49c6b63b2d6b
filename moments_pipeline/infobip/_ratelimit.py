"""One rate budget per Infobip account in the process, shared by every client and every call.

Infobip allows 10 requests/s per account and answers 429 above it. Bursting 10 requests at the
top of each second would collide with any window the server uses, so the budget paces request
STARTS, one every ``interval`` (``1 / rate``, widened by a small safety margin), on a fixed grid
(a GCRA "theoretical arrival time"):

- a start that wakes a little late (timer jitter, up to 20 % of the interval) keeps the grid,
  so jitter does not erode the rate; a longer stall (a busy event loop, a GC pause) moves the
  grid instead: late requests are never caught up in a burst, consecutive starts stay at least
  0.8 interval apart;
- and, as a hard guarantee, a sliding window: no span of ``k * interval`` (``k`` = the rate
  rounded, 10; ``k * interval`` = 1 s widened by the safety margin) holds more than ``k``
  request ISSUE times. A caller first reserves a slot (``reserve``), may do a little work
  (the sync engine makes its "on the wire" mark durable there), then says ``issued()`` right
  before the request goes out, or ``cancel_reservation()`` if it never does. An outstanding
  reservation counts as an issue happening now, so work between the slot and the request can
  delay an issue but never bunch one with a later slot: for the last-reserved of any ``k + 1``
  issues, the other ``k`` were either issued within the window or still reserved when it was
  granted, and it would have been refused. A slot held back by the window alone (an earlier
  request issued late) keeps the grid, so such a delay is paid once, not by every later slot.

A 429 pauses the whole budget (every client of the account) until ``Retry-After``.

Adaptive spacing (AIMD on the safety margin). The server counts requests when its application
handles them, so arrivals bunched by stalls on either side (a GC pause, CPU contention, a
lagging event loop) can put 11 requests in its window although every start was on schedule.
Each 429 costs a whole ``Retry-After`` second (ten requests' worth) for the whole account, so
after a 429 the budget widens its margin additively (``widen_step``, 1.5 points, at most once
per window of ``k`` starts, since the requests in flight when one is refused were all paced by
the old spacing) up to ``max_safety_margin`` (6 %). After ``relax_after`` (200, about 20 s)
accepted requests in a row it narrows the margin again by ``relax_step`` (0.5 point), never
below the configured ``safety_margin``. A quiet machine so keeps the configured 1 % (about
0.99 of the ceiling); a loaded one settles at the spacing its jitter needs instead of paying
one second per 429. The first window of a fresh (or idle) account goes out at the ceiling's
spacing (about 50 ms in all): new connections and a cold server delay the first arrivals, which
then bunch with the ones behind them. The client reports outcomes with
:meth:`RateBudget.note_rate_limited` and :meth:`RateBudget.note_accepted`.

Across processes. Two processes of one account (two Dagster runs, a run and a CLI sync) would
each pace alone and together exceed the limit. Given a ``PacingRecord`` (``_pacing_record``:
a file per account under ``MomentsClientConfig.pacing_dir``, locked with ``flock``), the
budget keeps its grid, window, reservations and pause THERE: each reservation, issue,
cancellation and pause loads the account's state, runs the same algorithm on it and stores it,
so any number of processes together keep the guarantees above. The adaptive margin stays per
process (each widens on its own 429s; a 429's pause is shared).

Constraints: starts are claimed under a ``threading.Lock`` and never awaited under it, so one
budget works across event loops and threads (the sync facade runs its own loop). Budgets are
keyed by ``MomentsClientConfig.account_id`` (base URL + key fingerprint), never by the key.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator

from ._config import MomentsClientConfig
from ._pacing_record import FilePacingRecord, PacingRecord, Reservation

__all__ = ["Clock", "RateBudget", "Sleep", "rate_budget_for"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# Lateness absorbed by the grid, as a fraction of the interval (see the module docstring).
_CATCH_UP_FRACTION = 0.2


class RateBudget:
    """Paces request starts at ``1 / rate_per_s`` (widened by a safety margin).

    Args:
        rate_per_s: Allowed requests per second.
        safety_margin: Fraction added to the interval (0.01 = 1 % slower than the limit); the
            adaptive margin never goes below it.
        max_safety_margin: Ceiling of the adaptive margin (never below ``safety_margin``).
        widen_step: Margin added after a 429.
        relax_step: Margin removed after ``relax_after`` accepted requests in a row.
        relax_after: Accepted requests in a row before the margin narrows one step.
        clock: Monotonic clock in seconds (injectable for tests).
        sleep: Async sleep (injectable for tests).
        record: Pacing state shared with the account's budgets in other processes
            (``_pacing_record``); None keeps the state in this budget alone.
    """

    def __init__(
        self,
        rate_per_s: float,
        *,
        safety_margin: float = 0.0,
        max_safety_margin: float = 0.06,
        widen_step: float = 0.015,
        relax_step: float = 0.005,
        relax_after: int = 200,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        record: PacingRecord | None = None,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        if widen_step < 0 or relax_step < 0 or relax_after < 1:
            raise ValueError("widen_step and relax_step must be >= 0, relax_after >= 1")
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._paused_until = float("-inf")
        self._next_due = float("-inf")
        self._max_margin = max_safety_margin
        self._widen_step = widen_step
        self._relax_step = relax_step
        self._relax_after = relax_after
        self._accepted_in_a_row = 0
        self._widened_at = float("-inf")
        self._warm_left = 0
        self._issued: deque[float] = deque()
        self._reserved = 0
        self._last_slot = float("-inf")
        self._record = record
        self._owner = secrets.token_hex(6)
        self._configure(rate_per_s, safety_margin)
        self._margin = self._base_margin
        self._interval = self._base_interval * (1.0 + self._margin)
        self.acquired = 0
        self.pauses = 0
        self.widenings = 0
        self.wake_lateness_s = 0.0
        self.wake_lateness_max_s = 0.0

    def _configure(self, rate_per_s: float, safety_margin: float) -> None:
        self._base_interval = 1.0 / rate_per_s
        self._base_margin = safety_margin
        self._window_starts = max(1, round(rate_per_s))

    def _set_margin(self, margin: float) -> None:
        """Apply a margin, clamped to [configured margin, max(configured, ceiling)]."""
        ceiling = max(self._base_margin, self._max_margin)
        self._margin = min(max(margin, self._base_margin), ceiling)
        self._interval = self._base_interval * (1.0 + self._margin)

    @property
    def interval_s(self) -> float:
        """Seconds between two request starts, on average (the current adaptive spacing)."""
        return self._interval

    @property
    def safety_margin(self) -> float:
        """The current adaptive margin (the configured one on a quiet run)."""
        return self._margin

    def tighten(self, rate_per_s: float, safety_margin: float) -> None:
        """Lower the rate if another client of the account asks for a slower one."""
        interval = (1.0 / rate_per_s) * (1.0 + safety_margin)
        with self._lock:
            if interval > self._base_interval * (1.0 + self._base_margin):
                extra = self._margin - self._base_margin
                self._configure(rate_per_s, safety_margin)
                self._set_margin(safety_margin + extra)

    def note_rate_limited(self) -> None:
        """A request of this account got a 429: widen the spacing (once per window)."""
        with self._lock:
            now = self._clock()
            self._accepted_in_a_row = 0
            # Requests already in flight were paced by the old spacing: their 429s are the
            # same event, not new evidence.
            if now - self._widened_at < self._window_starts * self._interval:
                return
            self._widened_at = now
            self._set_margin(self._margin + self._widen_step)
            self.widenings += 1

    def note_accepted(self) -> None:
        """A request of this account got past the limiter: relax slowly after a clean run."""
        with self._lock:
            self._accepted_in_a_row += 1
            if self._accepted_in_a_row >= self._relax_after:
                self._accepted_in_a_row = 0
                self._set_margin(self._margin - self._relax_step)

    @property
    def record(self) -> PacingRecord | None:
        """The pacing state shared across processes, if any."""
        return self._record

    def share(self, record: PacingRecord) -> None:
        """Start sharing the pacing state through ``record`` (once; later calls keep it)."""
        with self._lock:
            if self._record is None:
                self._record = record

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The budget's lock and, with a record, the account's shared state loaded into it.

        The algorithm runs unchanged on the loaded fields; a change of ``_reserved`` by the
        block becomes this budget's own reservation added to or removed from the record.
        """
        with self._lock:
            record = self._record
            if record is None:
                yield
                return
            with record.transaction(self._clock()) as state:
                self._next_due, self._paused_until = state.next_due, state.paused_until
                self._last_slot, self._warm_left = state.last_slot, state.warm_left
                self._issued = deque(state.issued)
                self._reserved = before = len(state.reservations)
                yield
                state.next_due, state.paused_until = self._next_due, self._paused_until
                state.last_slot, state.warm_left = self._last_slot, self._warm_left
                state.issued = list(self._issued)
                pid = os.getpid()
                for _ in range(self._reserved - before):
                    state.reservations.append(Reservation(pid, self._owner, self._clock()))
                for _ in range(before - self._reserved):
                    mine = [
                        r for r in state.reservations if r.owner == self._owner and r.pid == pid
                    ]
                    if mine:  # else it expired meanwhile and was dropped already
                        state.reservations.remove(mine[0])

    def now(self) -> float:
        """The budget's own clock (issue times passed to :meth:`issued` must be on it)."""
        return self._clock()

    @property
    def window_s(self) -> float:
        """The sliding window holding at most ``k`` issues: ``k * interval`` (about 1.01 s)."""
        return self._window_starts * self._interval

    def try_reserve(self) -> float:
        """Reserve the right to issue one request now; else return the seconds to wait (> 0).

        A granted reservation must end in :meth:`issued` or :meth:`cancel_reservation`.
        """
        with self._locked():
            now = self._clock()
            window = self._window_starts * self._interval
            issued = self._issued
            while issued and issued[0] <= now - window:
                issued.popleft()
            grid_due = max(self._next_due, self._paused_until)
            window_due = float("-inf")
            excess = len(issued) + self._reserved - self._window_starts
            if excess >= 0:
                if excess < len(issued):
                    # Enough issues must leave the window: the (excess+1)-th oldest decides.
                    window_due = issued[excess] + window
                else:  # the window is full of reservations not issued yet: look again soon
                    window_due = now + self._interval / 4
            due = max(grid_due, window_due)
            if now < due:
                return due - now
            if now - self._last_slot > window:
                # A fresh or idle account: the first window goes out at the widest spacing.
                self._warm_left = self._window_starts
            interval = self._interval
            if self._warm_left > 0:
                self._warm_left -= 1
                interval = self._base_interval * (1.0 + max(self._max_margin, self._margin))
            # Late because an earlier request was issued late (work between its slot and its
            # issue): the window already spaced this one, so the grid stays and the rate with
            # it. Late because the caller was (a stall): the grid moves, no burst follows.
            excused = window_due > grid_due and window_due > self._next_due
            on_grid = excused or now - self._next_due <= _CATCH_UP_FRACTION * self._interval
            self._next_due = (self._next_due if on_grid else now) + interval
            self._last_slot = now
            self._reserved += 1
            self.acquired += 1
            return 0.0

    def issued(self, at: float | None = None) -> None:
        """The reserved request is issued: its time (``at``, default now) enters the window.

        ``at`` is for a caller that learns of the issue after the fact (a transport that
        reports no write events): the window stays ordered by time.
        """
        with self._locked():
            self._reserved = max(0, self._reserved - 1)
            when = self._clock() if at is None else at
            if self._issued and when < self._issued[-1]:
                bisect.insort(self._issued, when)
            else:
                self._issued.append(when)

    def cancel_reservation(self) -> None:
        """The reserved request will not be issued: free its place in the window."""
        with self._locked():
            self._reserved = max(0, self._reserved - 1)

    def try_start(self) -> float:
        """Reserve and issue at once (a caller with nothing to do in between)."""
        wait = self.try_reserve()
        if wait <= 0:
            self.issued()
        return wait

    async def reserve(self) -> None:
        """Wait until this caller may issue a request; then ``issued()`` or cancel it."""
        woke_due: float | None = None
        while True:
            wait = self.try_reserve()
            if wait <= 0:
                if woke_due is not None:
                    # How late the sleeper woke (a stalled event loop or thread shows here).
                    late = self._clock() - woke_due
                    if late > 0:
                        self.wake_lateness_s += late
                        self.wake_lateness_max_s = max(self.wake_lateness_max_s, late)
                return
            woke_due = self._clock() + wait
            await self._sleep(wait)

    async def acquire(self) -> None:
        """Wait until this caller may start a request; it must start at once."""
        await self.reserve()
        self.issued()

    def pause(self, seconds: float) -> None:
        """Hold every start of the account for ``seconds`` (after a 429)."""
        with self._locked():
            until = self._clock() + max(0.0, seconds)
            if until > self._paused_until:
                self._paused_until = until
                self.pauses += 1


_REGISTRY: dict[str, RateBudget] = {}
_REGISTRY_LOCK = threading.Lock()


def rate_budget_for(
    config: MomentsClientConfig, *, record: PacingRecord | None = None
) -> RateBudget:
    """Return the process-wide budget of the config's account, creating it on first use.

    A later client asking for a slower rate slows the shared budget down; never up. With
    ``config.pacing_dir`` the budget shares its pacing with the account's other processes of
    this host; ``record`` (e.g. the PostgreSQL ``SqlPacingRecord``) takes the place of that
    file. The first record a budget gets stays its record.
    """
    with _REGISTRY_LOCK:
        budget = _REGISTRY.get(config.account_id)
        if record is None and config.pacing_dir is not None:
            record = FilePacingRecord(config.pacing_dir, config.account_id)
        if budget is None:
            budget = RateBudget(
                config.rate_per_s,
                safety_margin=config.rate_safety_margin,
                max_safety_margin=config.max_rate_safety_margin,
                record=record,
            )
            _REGISTRY[config.account_id] = budget
        else:
            budget.tighten(config.rate_per_s, config.rate_safety_margin)
            if record is not None:
                budget.share(record)
        return budget
