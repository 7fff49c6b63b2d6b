"""Throughput of the served emulator on add-flow-participants (rate limit off).

Starts ``moments-pipeline emulator`` as a subprocess on a free loopback port (uvicorn, one
worker), then drives it with an httpx.AsyncClient keeping several requests in flight, each
request carrying 1000 distinct participants. The last output line is one JSON object.

    .venv/bin/python benchmarks/bench_emulator.py [--requests 1000] [--concurrency 8] [--state]
"""

from __future__ import annotations

import argparse
import asyncio
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


async def drive(base_url: str, requests: int, concurrency: int, size: int) -> dict[str, float]:
    bodies = [body(i, size) for i in range(requests)]
    latencies: list[float] = []
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

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
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
            result = asyncio.run(
                drive(base_url, args.requests, args.concurrency, args.participants)
            )
            result["state_journal"] = args.state
        finally:
            server.terminate()
            server.wait(timeout=60)
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
