"""Two syncs in two OS processes share the account's 10 requests/s: no 429, at the limit.

Two audiences (two flows, distinct people, two DuckDB ledgers: DuckDB admits one writing
process per file) are synced at once by ``scripts/sync_worker.py`` processes against the
served emulator with its 10/s limiter on. Each worker's budget shares the account's pacing
record (a file in a directory of this test); the emulator's request log then holds 0 answers
429 and the combined rate over the busy span is at least 0.9 of the limit (the 0.95 target is
measured by benchmarks/bench_concurrent.py on a quiet machine). The negative
control runs the same workers each pacing alone: together they exceed the limit, which shows
the limiter would catch a budget that is not shared.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from moments_pipeline.emulator import EmulatorSettings, SystemClock
from moments_pipeline.emulator.settings import FlowConfig
from moments_pipeline.emulator.testing import ServedEmulator

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from sync_worker import run_together

API_KEY = "concurrent-key-never-logged-31"
FLOWS = (200000000000002, 200000000000003)
LIMIT = 10.0
LIMITED_OPERATIONS = {
    "add-flow-participants",
    "get-flow-participants-added-report",
    "remove-people-from-flow",
}


@pytest.fixture
def limited_emulator(emulator_registry: list[Any]) -> Iterator[ServedEmulator]:
    """Served emulator on the wall clock, limiter on (10/s).

    As in ``tests/infobip/test_shared_budget.py``, its window tolerance is 150 ms (the window
    is 0.85 s instead of 0.95 s) so that this shared machine's scheduling stalls, which bunch
    arrivals at the server although the starts were paced, are not taken for client bursts;
    the workers' own issue times are held to the strict 1 s window below, and two unshared
    budgets still exceed the tolerant limiter easily (the negative control).
    """
    settings = EmulatorSettings(
        api_keys=[SecretStr(API_KEY)],
        rate_limit_per_s=LIMIT,
        rate_limit_jitter_ms=150.0,
        record_exchanges=True,
        flows=[FlowConfig(campaign_id=c, name=f"flow {c}") for c in FLOWS],
        processing_delay_s=0.05,
        callback_backoff_s=0.05,
        callback_timeout_s=5.0,
    )
    with ServedEmulator(settings, api_key=API_KEY, clock=SystemClock()) as served:
        emulator_registry.append(served.emulator)
        yield served


def _workers(tmp: Path, rows: int, batch: int, pacing_dir: Path | None) -> list[list[str]]:
    shared = ["--pacing-dir", str(pacing_dir)] if pacing_dir is not None else []
    workers = []
    for i, campaign in enumerate(FLOWS):
        options = {
            "--db": str(tmp / f"ledger{i}.duckdb"),
            "--audience": f"audience{i}",
            "--campaign-id": str(campaign),
            "--rows": str(rows),
            "--first": str(i * 1_000_000),
            "--batch-size": str(batch),
        }
        workers.append([*(x for kv in options.items() for x in kv), *shared])
    return workers


def _limited_entries(served: ServedEmulator) -> list[dict[str, Any]]:
    return [e for e in served.emulator.request_log if e["operation"] in LIMITED_OPERATIONS]


def test_two_processes_share_the_budget_no_429_at_the_limit(
    limited_emulator: ServedEmulator, tmp_path: Path
) -> None:
    rows, batch = 400, 10  # 40 requests per worker, 80 in all: about 8 s at 10/s
    results = run_together(
        limited_emulator.base_url, API_KEY, _workers(tmp_path, rows, batch, tmp_path / "pacing")
    )
    entries = _limited_entries(limited_emulator)
    assert [e["status"] for e in entries if e["status"] == 429] == []
    assert [r["http_429"] for r in results] == [0, 0]
    # The hard guarantee, at the source: the two processes' issue times (one monotonic clock
    # for the host) together never put 11 requests in one second.
    issues = sorted(t for r in results for t in r["issues"])
    assert len(issues) >= 2 * rows // batch
    assert min(issues[i + 10] - issues[i] for i in range(len(issues) - 10)) >= 1.0
    for result in results:
        assert result["status_counts"] == {"ACCEPTED": rows}
    adds = sorted(
        (e["time"], e["path"]) for e in entries if e["operation"] == "add-flow-participants"
    )
    assert len(adds) == 2 * rows // batch
    # Both really sent at the same time: each flow's adds interleave with the other's.
    spans = {c: [t for t, p in adds if str(c) in p] for c in FLOWS}
    overlap = (max(min(s) for s in spans.values()), min(max(s) for s in spans.values()))
    assert overlap[1] - overlap[0] > 2.0, spans
    assert all(sum(overlap[0] <= t <= overlap[1] for t in s) >= 15 for s in spans.values())
    # Combined rate over the busy span: every rate-limited request between the first and the
    # last add (report polls, if any, spend the same budget).
    first, last = adds[0][0], adds[-1][0]
    busy = [e for e in entries if first <= e["time"] <= last]
    rate = (len(busy) - 1) / (last - first)
    print(f"combined rate {rate:.3f}/s over {last - first:.1f} s, {len(busy)} requests, 0 x 429")
    # The 0.95 target is measured by benchmarks/bench_concurrent.py on a quiet machine; here
    # the bound only needs to catch a budget that starves one process or serialises the two.
    assert rate >= 0.9 * LIMIT, rate
    assert rate <= LIMIT * 1.02, rate


def test_two_processes_pacing_alone_exceed_the_limit(
    limited_emulator: ServedEmulator, tmp_path: Path
) -> None:
    # The negative control: the same workers, each with its own budget, get 429s.
    run_together(limited_emulator.base_url, API_KEY, _workers(tmp_path, 150, 10, None))
    assert any(e["status"] == 429 for e in _limited_entries(limited_emulator))
