"""The shared pacing record: budgets of one account in different processes pace as one.

Two ``RateBudget`` objects on one ``FilePacingRecord`` stand for two processes here (each has
its own owner token and lock, and shares nothing but the file); the real two-process run
against the served emulator is ``tests/e2e/test_concurrent_runs_budget.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from moments_pipeline.infobip import (
    FilePacingRecord,
    MomentsClientConfig,
    PacingRecordError,
    RateBudget,
    default_pacing_dir,
    rate_budget_for,
)
from moments_pipeline.infobip._pacing_record import Reservation

from .support import VirtualClock

ACCOUNT = "https://pacing.api.infobip.com#0123456789ab"


def _pair(tmp_path: Path, clock: VirtualClock) -> tuple[RateBudget, RateBudget]:
    return (
        RateBudget(10, clock=clock, sleep=clock.sleep, record=FilePacingRecord(tmp_path, ACCOUNT)),
        RateBudget(10, clock=clock, sleep=clock.sleep, record=FilePacingRecord(tmp_path, ACCOUNT)),
    )


async def _starts(budgets: tuple[RateBudget, ...], per_budget: int, clock: VirtualClock) -> list:
    starts: list[float] = []

    async def one(budget: RateBudget) -> None:
        await budget.acquire()
        starts.append(clock())

    await asyncio.gather(*(one(b) for b in budgets for _ in range(per_budget)))
    return sorted(starts)


async def test_two_budgets_on_one_record_pace_as_one(tmp_path: Path) -> None:
    clock = VirtualClock()
    starts = await _starts(_pair(tmp_path, clock), 15, clock)
    assert len(starts) == 30
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.1 - 1e-9
    assert max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts) == 10
    # And at the rate: 30 starts take about 2.9 s (+ the slower first window), not 5.8.
    assert starts[-1] - starts[0] < 3.2


async def test_without_a_record_two_budgets_together_exceed_the_limit(tmp_path: Path) -> None:
    clock = VirtualClock()
    budgets = (
        RateBudget(10, clock=clock, sleep=clock.sleep),
        RateBudget(10, clock=clock, sleep=clock.sleep),
    )
    starts = await _starts(budgets, 15, clock)
    assert max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts) > 10


def test_a_reservation_counts_for_the_other_budget(tmp_path: Path) -> None:
    clock = VirtualClock()
    a, b = _pair(tmp_path, clock)
    for _ in range(10):
        clock.now += 0.11
        assert a.try_reserve() == 0.0  # reserved, never issued yet
    clock.now += 0.11
    assert b.try_reserve() > 0  # the window is full of a's reservations
    for _ in range(10):
        a.cancel_reservation()
    assert b.try_reserve() == 0.0


def test_a_pause_holds_the_other_budget(tmp_path: Path) -> None:
    clock = VirtualClock()
    a, b = _pair(tmp_path, clock)
    a.pause(2.0)
    assert b.try_reserve() == pytest.approx(2.0)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_reservations_of_a_dead_process_or_too_old_are_dropped(tmp_path: Path) -> None:
    clock = VirtualClock()
    record = FilePacingRecord(tmp_path, ACCOUNT, reservation_ttl_s=10.0)
    dead = _dead_pid()
    with record.transaction(clock()) as state:
        state.reservations = [Reservation(dead, "crashed", clock()) for _ in range(10)]
    budget = RateBudget(10, clock=clock, sleep=clock.sleep, record=record)
    assert budget.try_reserve() == 0.0  # the crashed process's ten slots were freed
    budget.cancel_reservation()
    # A live process's reservation (this one) is kept until the TTL, then dropped.
    with record.transaction(clock()) as state:
        state.reservations = [Reservation(__import__("os").getpid(), "x", clock())] * 10
    assert budget.try_reserve() > 0
    clock.now += 10.5
    assert budget.try_reserve() == 0.0


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'{"version": 99}', None],
    ids=["unreadable", "unknown-version", "far-future-times"],
)
def test_a_corrupt_or_implausible_record_is_discarded_not_wedging(
    tmp_path: Path, content: bytes | None
) -> None:
    clock = VirtualClock()
    record = FilePacingRecord(tmp_path, ACCOUNT)
    if content is None:  # another boot's state: its times are far ahead of this clock
        with record.transaction(clock() + 10_000) as state:
            state.next_due = clock() + 10_000
            state.paused_until = clock() + 10_000
    else:
        tmp_path.mkdir(exist_ok=True)
        record.path.write_bytes(content)
    budget = RateBudget(10, clock=clock, sleep=clock.sleep, record=record)
    assert budget.try_reserve() == 0.0
    assert record.discarded == 1


def test_the_record_names_the_account_never_the_key(tmp_path: Path) -> None:
    key = "super-secret-key-77"
    directory = tmp_path / "pacing"  # created by the record
    config = MomentsClientConfig(
        base_url="https://pacing-key.api.infobip.com", api_key=key, pacing_dir=str(directory)
    )
    budget = rate_budget_for(config)
    assert isinstance(budget.record, FilePacingRecord)
    assert budget.try_start() == 0.0
    files = list(directory.iterdir())
    assert files and all(key not in f.name for f in files)
    body = budget.record.path.read_bytes()
    assert key.encode() not in body
    assert orjson.loads(body)["account"] == config.account_id
    assert len(orjson.loads(body)["issued"]) == 1
    assert directory.stat().st_mode & 0o777 == 0o700
    assert budget.record.path.stat().st_mode & 0o077 == 0
    assert key not in repr(budget.record)


def test_default_pacing_dir_prefers_the_setting_then_dagster_home() -> None:
    assert default_pacing_dir({"MOMENTS_PACING_DIR": "/x/p", "DAGSTER_HOME": "/d"}) == "/x/p"
    assert default_pacing_dir({"DAGSTER_HOME": "/d"}) == "/d/moments_pacing"
    assert "moments_pipeline_pacing-" in default_pacing_dir({})


def test_an_unusable_directory_fails_saying_which_file(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    budget = RateBudget(10, record=FilePacingRecord(blocker / "pacing", ACCOUNT))
    with pytest.raises(PacingRecordError, match=r"a-file/pacing"):
        budget.try_reserve()
