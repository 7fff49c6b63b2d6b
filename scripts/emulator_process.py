"""Run ``moments-pipeline emulator`` as a child process for the demo and the benchmarks.

One place for the start-up dance: pick a free loopback port, pass the key through the
environment (``MOMENTS_EMULATOR_API_KEY``, so it never shows in ``ps``), wait until the server
answers, and stop it on the way out. Tests use ``moments_pipeline.emulator.testing`` instead.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

__all__ = ["served_emulator"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def served_emulator(api_key: str, *args: str, start_timeout_s: float = 30.0) -> Iterator[str]:
    """Serve the emulator on a free loopback port; yield its base URL.

    Args:
        api_key: The key the emulator accepts (``Authorization: App <key>``).
        *args: More command-line arguments, e.g. ``"--rate-limit", "10"``.
        start_timeout_s: How long to wait for the first answer.
    """
    port = _free_port()
    exe = Path(sys.executable).with_name("moments-pipeline")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "moments_pipeline.cli"]
    cmd += ["emulator", "--host", "127.0.0.1", "--port", str(port), *args]
    env = {**os.environ, "MOMENTS_EMULATOR_API_KEY": api_key}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"the emulator exited with {proc.returncode}: {err[-2000:]}")
            try:
                if httpx.get(f"{base_url}/_emulator/faults", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the emulator did not start within {start_timeout_s:.0f} s")
            time.sleep(0.1)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
