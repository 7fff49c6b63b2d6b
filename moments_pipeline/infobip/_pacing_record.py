"""The account's pacing state, shared by every process of this host through one small file.

``RateBudget`` keeps the pacing of one Infobip account (grid, sliding window of issue times,
reservations, 429 pause). Inside one process its lock is enough; two processes (two Dagster
runs, a run and a backfill, a CLI sync) would each pace alone and together send 20 requests/s.
A :class:`FilePacingRecord` holds that state in a file per account, so every budget of the
account on this host reads and writes one state, under an exclusive ``fcntl.flock``, in one
short transaction per reservation, issue, cancellation or pause.

Why a file (and not the ledger's database): DuckDB admits one writing process per file, so a
DuckDB ledger cannot be the meeting point of two processes; a lock file works for any warehouse,
needs no server, costs tens of microseconds per transaction (three per request, 30/s at 10
requests/s), and ``flock`` locks are released by the kernel when their holder dies, so a
crashed process never keeps the lock. Its scope is one host: runs on several hosts (Dagster on
Kubernetes) need a record on a shared server, which this interface (:class:`PacingRecord`)
admits but which is not built here.

What keeps a crash from wedging the budget:

- a reservation is recorded with its owner's pid and time; one whose process is gone, or older
  than ``reservation_ttl_s`` (10 s; a reservation normally lives milliseconds, the time to
  write the batch's SENDING mark), is dropped by the next transaction;
- times are ``time.monotonic()`` (CLOCK_MONOTONIC on Linux and macOS, one clock for every
  process of the host); a state written under another boot (a different
  ``/proc/sys/kernel/random/boot_id``), or holding times implausibly far ahead, is discarded;
- an unreadable file is discarded too: losing the record costs at most one window at full rate
  (the server's 429 then pauses the budget), never a stop.

File names are a hash of ``MomentsClientConfig.account_id`` (base URL + key fingerprint); the
file holds the account id for operators, never the key. The directory is created ``0700`` and
the files ``0600``: only the owner's processes share (or can disturb) the budget.

Constraints: POSIX only (``fcntl``); never held across an ``await`` (a transaction is a few
system calls under the budget's thread lock).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import orjson

__all__ = [
    "FilePacingRecord",
    "PacingRecord",
    "PacingRecordError",
    "PacingState",
    "Reservation",
    "decode_state",
    "encode_state",
    "implausible",
]

_VERSION = 1
# Times further ahead than this are from another boot or a corrupted file, never real.
_FUTURE_SLACK_S = 120.0
# Issue times older than this are out of every window (about 1.06 s at most) and are dropped.
_KEEP_ISSUES_S = 5.0
_BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


class PacingRecordError(OSError):
    """The shared pacing record cannot be used (the message names its file, says why)."""


@dataclasses.dataclass(slots=True)
class Reservation:
    """A granted slot not yet issued: who holds it and since when."""

    pid: int
    owner: str
    at: float


@dataclasses.dataclass(slots=True)
class PacingState:
    """The account's pacing, as ``RateBudget`` keeps it (``-inf`` = never)."""

    next_due: float = -math.inf
    paused_until: float = -math.inf
    last_slot: float = -math.inf
    warm_left: int = 0
    issued: list[float] = dataclasses.field(default_factory=list)
    reservations: list[Reservation] = dataclasses.field(default_factory=list)

    @classmethod
    def decode(cls, raw: dict[str, object], shift: float = 0.0) -> PacingState:
        """A stored state (``encode``), its times moved by ``shift`` (see ``decode_state``)."""
        return decode_state(raw, shift)

    def encode(self, now: float, shift: float = 0.0) -> dict[str, object]:
        """JSON-ready data, times moved by ``shift`` (see ``encode_state``)."""
        return encode_state(self, now, shift)

    def implausible(self, now: float) -> bool:
        """Times too far ahead of ``now`` to be real (see ``implausible``)."""
        return implausible(self, now)


class PacingRecord(Protocol):
    """Where an account's pacing state lives while several budgets share it."""

    def transaction(self, now: float) -> contextlib.AbstractContextManager[PacingState]:
        """Hold the record exclusively; yield its state; store it when the block ends cleanly."""
        ...


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process with that pid: treat it as alive
        return True
    return True


def _boot_id() -> str:
    try:
        return _BOOT_ID_PATH.read_text().strip()
    except OSError:
        return ""


def _time(value: object) -> float:
    return float(value) if isinstance(value, int | float) else -math.inf


def decode_state(raw: dict[str, object], shift: float = 0.0) -> PacingState:
    """A stored state, its times moved by ``shift`` (to the reader's clock).

    Raises:
        KeyError, TypeError, ValueError: The state is not one this version wrote.
    """
    if raw.get("version") != _VERSION:
        raise ValueError("unknown version")
    issued = raw["issued"]
    reservations = raw["reservations"]
    if not isinstance(issued, list) or not isinstance(reservations, list):
        raise TypeError("issued and reservations must be lists")
    return PacingState(
        next_due=_time(raw["next_due"]) + shift,
        paused_until=_time(raw["paused_until"]) + shift,
        last_slot=_time(raw["last_slot"]) + shift,
        warm_left=int(raw["warm_left"]),  # type: ignore[call-overload]
        issued=sorted(float(t) + shift for t in issued),
        reservations=[Reservation(int(p), str(o), float(t) + shift) for p, o, t in reservations],
    )


def encode_state(state: PacingState, now: float, shift: float = 0.0) -> dict[str, object]:
    """The state as JSON-ready data, times moved by ``shift``; issues out of every window go."""
    keep = now - _KEEP_ISSUES_S

    def moved(value: float) -> float | None:
        return None if value == -math.inf else value + shift

    return {
        "version": _VERSION,
        "next_due": moved(state.next_due),
        "paused_until": moved(state.paused_until),
        "last_slot": moved(state.last_slot),
        "warm_left": state.warm_left,
        "issued": [t + shift for t in state.issued if t > keep],
        "reservations": [[r.pid, r.owner, r.at + shift] for r in state.reservations],
    }


def implausible(state: PacingState, now: float) -> bool:
    """Times too far ahead of ``now`` to be real (another boot, a clock jump, a bad file)."""
    # A pause may be long (Retry-After), the rest is at most a slot or two ahead.
    ahead = now + _FUTURE_SLACK_S
    times = [state.next_due, state.last_slot, *state.issued]
    times += [r.at for r in state.reservations]
    return any(t > ahead for t in times) or state.paused_until > now + 3600.0


class FilePacingRecord:
    """One account's pacing state in ``<directory>/<hash of account id>.json``.

    Args:
        directory: Where the record lives (created ``0700`` if missing).
        account_id: ``MomentsClientConfig.account_id`` (never the key itself).
        reservation_ttl_s: Age after which a reservation is presumed abandoned.
    """

    def __init__(
        self, directory: str | os.PathLike[str], account_id: str, *, reservation_ttl_s: float = 10.0
    ) -> None:
        if reservation_ttl_s <= 0:
            raise ValueError("reservation_ttl_s must be positive")
        self.directory = Path(directory)
        self.account_id = account_id
        self.reservation_ttl_s = reservation_ttl_s
        name = hashlib.sha256(account_id.encode()).hexdigest()[:24]
        self.path = self.directory / f"{name}.json"
        self._lock_path = self.directory / f"{name}.lock"
        self._boot = _boot_id()
        self.discarded = 0  # states thrown away (another boot, unreadable, implausible)

    def __repr__(self) -> str:
        return f"FilePacingRecord({str(self.path)!r})"

    @contextlib.contextmanager
    def transaction(self, now: float) -> Iterator[PacingState]:
        """Lock the record, yield its (cleaned) state, write it back if the block succeeds.

        Raises:
            PacingRecordError: The directory cannot be created or opened, or belongs to
                another user (who could then disturb this account's budget).
        """
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            state = self._load(now)
            yield state
            self._store(state, now)
        finally:
            os.close(fd)  # closing releases the flock

    def _open(self) -> int:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            owner = self.directory.stat().st_uid
            if hasattr(os, "getuid") and owner != os.getuid():
                raise PacingRecordError(
                    f"the pacing record directory {self.directory} belongs to another user "
                    f"(uid {owner}); set MomentsClientConfig.pacing_dir to a directory of yours"
                )
            return os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except PacingRecordError:
            raise
        except OSError as exc:
            raise PacingRecordError(
                f"the shared pacing record {self._lock_path} cannot be opened: {exc.strerror}"
            ) from None

    def _load(self, now: float) -> PacingState:
        try:
            raw = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return PacingState()
        except (OSError, orjson.JSONDecodeError):
            self.discarded += 1
            return PacingState()
        try:
            state = decode_state(raw)
        except (KeyError, TypeError, ValueError):
            self.discarded += 1
            return PacingState()
        if raw.get("boot") != self._boot or implausible(state, now):
            self.discarded += 1
            return PacingState()
        horizon = now - self.reservation_ttl_s
        state.reservations = [r for r in state.reservations if r.at > horizon and _pid_alive(r.pid)]
        return state

    def _store(self, state: PacingState, now: float) -> None:
        body = orjson.dumps(
            {**encode_state(state, now), "account": self.account_id, "boot": self._boot}
        )
        # Write aside, then rename: a process killed mid-write leaves the old state whole.
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, body)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
