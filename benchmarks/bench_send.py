"""Benchmark: sending participants through MomentsClient vs Infobip's official Python client.

Starts the emulator as a separate process (``moments-pipeline emulator``) with the 10/s limit
on and ``--latency-ms`` of added latency, sends ``--participants`` distinct participants in
1000-participant requests through :class:`MomentsClient`, then a sample of ``--baseline-requests``
requests through a sequential loop of ``infobip_api_client`` (FlowApi.add_flow_participants).
This process runs only the clients, so ``time.process_time`` measures client CPU alone.

Before the timed run the client warms up (one get-forms, one 1-participant add, then 1.2 s for
the emulator's window to empty), so the figures describe the steady state. ``requests_per_s``
is completed requests over the time from the first start to the last answer. Diagnostics:
``client_min_10_span_s`` (shortest span of 11 consecutive starts at the client, >= 1 s means no
burst), ``emulator_min_10_span_s`` (the same for arrivals as the emulator's limiter logged
them) and ``arrival_delay_ms_*`` (slot-to-limiter delays).

The last line printed is one JSON object with the figures.

    .venv/bin/python benchmarks/bench_send.py --latency-ms 150
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from moments_pipeline.infobip import MomentsClient, MomentsClientConfig, RateBudget

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from emulator_process import served_emulator

CAMPAIGN_ID = 200000000000001  # the spec's example flow, seeded by the emulator
API_KEY = "bench-" + os.urandom(12).hex()
BATCH = 1000


class RecordingBudget(RateBudget):
    """The account's rate budget, also recording when each request was issued."""

    def __init__(self, config: MomentsClientConfig) -> None:
        super().__init__(config.rate_per_s, safety_margin=config.rate_safety_margin)
        self.starts: list[float] = []

    def issued(self) -> None:
        super().issued()
        self.starts.append(time.time())


def min_span(times: list[float], k: int = 10) -> float | None:
    """Shortest time covered by k+1 consecutive events (>= 1 s means no 11 in a second)."""
    times = sorted(times)
    spans = [times[i + k] - times[i] for i in range(len(times) - k)]
    return min(spans) if spans else None


def make_batches(start: int, participants: int) -> list[list[dict[str, Any]]]:
    """Distinct participants (unique phone, email and externalId), in 1000-participant batches."""
    people = [
        {
            "identifyBy": {"identifier": f"4179{start + i:08d}", "type": "PHONE"},
            "variables": {"orderNumber": start + i},
            "person": {
                "externalId": f"bench-{start + i}",
                "firstName": "Bench",
                "contactInformation": {
                    "phone": [{"number": f"4179{start + i:08d}"}],
                    "email": [{"address": f"bench{start + i}@example.com"}],
                },
            },
        }
        for i in range(participants)
    ]
    return [people[i : i + BATCH] for i in range(0, len(people), BATCH)]


async def run_client(
    base_url: str, batches: list[list[dict[str, Any]]], max_in_flight: int
) -> dict[str, Any]:
    """Send every batch through MomentsClient at the account's rate."""
    config = MomentsClientConfig(
        base_url=base_url, api_key=API_KEY, max_in_flight=max_in_flight, read_timeout_s=60
    )
    budget = RecordingBudget(config)
    async with MomentsClient(config, rate_budget=budget) as client:
        # Warm up connections and the emulator's cold paths, then let its window empty, so the
        # figures describe the steady state rather than the first second of a fresh server.
        await client.get_forms(limit=1)
        await client.add_flow_participants(CAMPAIGN_ID, make_batches(20_000_000, 1)[0])
        await asyncio.sleep(1.2)
        before = client.stats.requests
        budget.starts.clear()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        results = await asyncio.gather(
            *(client.add_flow_participants(CAMPAIGN_ID, batch) for batch in batches),
            return_exceptions=True,
        )
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        stats = client.stats
    failures = [repr(r) for r in results if isinstance(r, BaseException)]
    ok = len(results) - len(failures)
    return {
        "requests": len(batches),
        "ok": ok,
        "failures": failures[:5],
        "wall_s": wall,
        "requests_per_s": ok / wall,
        "participants_per_s": sum(len(b) for b in batches) / wall if not failures else None,
        "client_cpu_ms_per_request": cpu * 1000 / max(1, stats.requests - before),
        "http_429": stats.http_429,
        "sent_requests": stats.requests - before,
        "client_min_10_span_s": min_span(budget.starts),
        "_starts": budget.starts,
    }


def run_baseline(base_url: str, batches: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Send batches one at a time through Infobip's official client (FlowApi)."""
    from infobip_api_client import ApiClient, Configuration
    from infobip_api_client.api.flow_api import FlowApi
    from infobip_api_client.exceptions import ApiException
    from infobip_api_client.models import FlowAddFlowParticipantsRequest

    api = FlowApi(ApiClient(Configuration(host=base_url, api_key=API_KEY)))
    http_429 = errors = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for batch in batches:
        try:
            request = FlowAddFlowParticipantsRequest.from_dict({"participants": batch})
            assert request is not None
            api.add_flow_participants(CAMPAIGN_ID, request)
        except ApiException as exc:
            errors += 1
            http_429 += exc.status == 429
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {
        "baseline_requests": len(batches),
        "baseline_errors": errors,
        "baseline_http_429": http_429,
        "baseline_requests_per_s": (len(batches) - errors) / wall,
        "baseline_cpu_ms_per_request": cpu * 1000 / len(batches),
    }


def emulator_view(base_url: str, starts: list[float]) -> dict[str, Any]:
    """429s and arrival spacing of add requests as the emulator logged them.

    ``arrival_delay_ms_max`` pairs the n-th start with the n-th arrival: the largest time a
    request took from its rate slot to the emulator's limiter (client send + network + server
    event-loop delay). A large one followed by a prompt one is what compresses the spacing.
    """
    since = starts[0] - 0.5 if starts else 0.0
    try:
        entries = httpx.get(base_url + "/_emulator/requests", timeout=10).json()
    except (httpx.HTTPError, ValueError):
        return {}
    adds = [e for e in entries if e.get("operation") == "add-flow-participants"]
    run = [e for e in adds if e.get("time", 0) >= since]
    arrivals = sorted(e["time"] for e in run)
    delays = [(a - s) * 1000 for a, s in zip(arrivals, sorted(starts), strict=False)]
    return {
        "emulator_429_logged": sum(1 for e in entries if e.get("status") == 429),
        "emulator_min_10_span_s": min_span(arrivals),
        "arrival_delay_ms_median": sorted(delays)[len(delays) // 2] if delays else None,
        "arrival_delay_ms_max": max(delays) if delays else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=200_000)
    parser.add_argument("--latency-ms", type=int, default=150)
    parser.add_argument("--baseline-requests", type=int, default=30)
    parser.add_argument("--max-in-flight", type=int, default=8)
    parser.add_argument("--rate-limit", default="10")
    args = parser.parse_args()

    batches = make_batches(0, args.participants)
    baseline_batches = make_batches(10_000_000, args.baseline_requests * BATCH)
    # The pre-built input is immutable: keep the collector from rescanning it during the run,
    # so the CPU and pacing figures describe the client, not this harness's test data.
    gc.collect()
    gc.freeze()
    with served_emulator(
        API_KEY, "--rate-limit", args.rate_limit, "--latency-ms", str(args.latency_ms)
    ) as base_url:
        result = asyncio.run(run_client(base_url, batches, args.max_in_flight))
        starts = result.pop("_starts")
        view = emulator_view(base_url, starts)
        baseline = run_baseline(base_url, baseline_batches) if args.baseline_requests else {}
    out: dict[str, Any] = {
        "latency_ms": args.latency_ms,
        "participants": args.participants,
        **result,
        "ceiling_ratio": result["requests_per_s"] / 10.0,
        **view,
        **baseline,
    }
    if baseline:
        out["ratio_vs_baseline"] = result["requests_per_s"] / baseline["baseline_requests_per_s"]
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
