"""Throughput of the served emulator on add-flow-participants (rate limit off).

Starts ``moments-pipeline emulator`` as a subprocess on a free loopback port (uvicorn, one
worker), then drives it with an httpx.AsyncClient keeping several requests in flight, each
request carrying 1000 distinct participants. The last output line is one JSON object:
throughput and latency of the accept path, the server process's CPU use over the run
(``server_cpu_s``, ``server_cpu_pct`` of one core, ``server_cpu_ms_per_request``), the load
average before and after (the machine is shared: compare runs at similar load), and
``backlog_s``: the time after the last answer until the last operation's report is final
(processing lags behind accepting under load; a report read never processes anything on the
wall clock, it waits for the background worker). Two throughputs: ``requests_per_s``, the
accepted requests per second (answered with an operationId), and ``completed_per_s``, the
requests per second counted until every report is final (operations are processed in
acceptance order, so the last report being final means all are), backlog included: the
sustained end-to-end rate.

    .venv/bin/python benchmarks/bench_emulator.py [--requests 1000] [--concurrency 8] [--state]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

KEY = "bench-key"
FLOW = 200000000000001


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def body(index: int, size: int) -> bytes:
    participants = [
        {
            "identifyBy": {"identifier": f"p{index}-{i}@bench.example", "type": "EMAIL"},
            "person": {
                "externalId": f"x{index}-{i}",
                "firstName": "Bench",
                "contactInformation": {"phone": [{"number": f"4179{index:05d}{i:04d}"}]},
            },
        }
        for i in range(size)
    ]
    return orjson.dumps({"participants": participants, "callbackData": f"batch-{index}"})


async def drive(
    base_url: str, requests: int, concurrency: int, size: int
) -> dict[str, float | int | None]:
    bodies = [body(i, size) for i in range(requests)]
    latencies: list[float] = []
    operation_ids: list[str] = []
    failures = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"App {KEY}", "content-type": "application/json"}
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=30
    ) as client:

        async def worker() -> None:
            nonlocal failures
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                started = time.perf_counter()
                response = await client.post(
                    f"/moments/1/flows/{FLOW}/participants", content=bodies[i]
                )
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    failures += 1
                else:
                    operation_ids.append(response.json()["operationId"])

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
        backlog_s = None
        completed_s = None
        if operation_ids:
            drained = time.perf_counter()
            while time.perf_counter() - drained < 300:
                report = await client.get(
                    f"/moments/1/flows/{FLOW}/participants/report",
                    params={"operationId": operation_ids[-1]},
                )
                if report.json()["participants"][0]["status"] != "PENDING":
                    backlog_s = round(time.perf_counter() - drained, 3)
                    completed_s = time.perf_counter() - started
                    break
                await asyncio.sleep(0.01)
    latencies.sort()
    return {
        "requests": requests,
        "participants_per_request": size,
        "concurrency": concurrency,
        "failures": failures,
        "seconds": round(seconds, 3),
        "requests_per_s": round(requests / seconds, 1),
        "participants_per_s": round(requests * size / seconds, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 2),
        "backlog_s": backlog_s,
        "completed_per_s": (
            round((requests - failures) / completed_s, 1) if completed_s is not None else None
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--participants", type=int, default=1000)
    parser.add_argument("--state", action="store_true", help="serve with a state journal")
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            "-m",
            "moments_pipeline.cli",
            "emulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--api-key",
            KEY,
            "--rate-limit",
            "off",
        ]
        if args.state:
            command += ["--state", str(Path(tmp) / "state.jsonl")]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base_url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"{base_url}/_emulator/faults", timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("emulator did not start") from None
                    time.sleep(0.1)
            load_before = os.getloadavg()
            cpu_before = process_cpu_s(server.pid)
            wall_before = time.perf_counter()
            result = asyncio.run(
                drive(base_url, args.requests, args.concurrency, args.participants)
            )
            # CPU over the whole drive, backlog included (it is work the server had to do).
            cpu = process_cpu_s(server.pid) - cpu_before
            wall = time.perf_counter() - wall_before
            result["state_journal"] = args.state
            result["server_cpu_s"] = round(cpu, 3)
            result["server_cpu_pct"] = round(100 * cpu / wall, 1)
            result["server_cpu_ms_per_request"] = round(1000 * cpu / args.requests, 2)
            result["loadavg_before"] = [round(x, 2) for x in load_before]
            result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
            result["cpus"] = os.cpu_count()
        finally:
            server.terminate()
            server.wait(timeout=60)
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
