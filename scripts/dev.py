"""``make dev``: Dagster's UI (and daemon) on the sample project, against the demo's emulator.

Starts the emulator on 127.0.0.1:8089 (key ``dev-key``) with the demo's journal
(``--state .demo/emulator.journal``), so a UI run after ``make demo`` meets an emulator that
remembers everyone the demo's ledger remembers; builds the sample warehouse only when it is
missing (a new warehouse comes with a new journal, as in the demo); prepares the project's
DAGSTER_HOME (``.dagster_home/``, scripts/dagster_home.py); then runs ``dg dev`` (the defs folder
and its MomentsAudiences component) or, with ``DEV_TOOL=dagster``, ``dagster dev -w
workspace.yaml``. Both run the daemon (schedules, sensors, the run queue). Ctrl-C stops the UI,
then the emulator.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import dagster_home  # noqa: E402
from build_sample_warehouse import build_duckdb  # noqa: E402

WAREHOUSE = REPO / ".demo" / "warehouse.duckdb"
JOURNAL = REPO / ".demo" / "emulator.journal"
EMULATOR_CONFIG = REPO / "data_samples" / "emulator.yaml"
PORT = os.environ.get("EMULATOR_PORT", "8089")
API_KEY = "dev-key"  # the local emulator's key, as `make emulator` uses


def main() -> int:
    """Run the UI until interrupted; return the exit code."""
    if not WAREHOUSE.exists():
        JOURNAL.unlink(missing_ok=True)  # a fresh ledger: the emulator starts empty too
        build_duckdb(WAREHOUSE)
    home = dagster_home.prepare()
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "VIRTUAL_ENV": str(bin_dir.parent),
        "INFOBIP_BASE_URL": f"http://127.0.0.1:{PORT}",
        "INFOBIP_API_KEY": API_KEY,
        "MOMENTS_WAREHOUSE_URL": os.environ.get("MOMENTS_WAREHOUSE_URL", f"duckdb:///{WAREHOUSE}"),
        "MOMENTS_AUDIENCES_DIR": os.environ.get("MOMENTS_AUDIENCES_DIR", str(REPO / "audiences")),
        "MOMENTS_EMULATOR_API_KEY": API_KEY,
    }
    emulator = subprocess.Popen(
        [
            str(bin_dir / "moments-pipeline"),
            "emulator",
            "--host",
            "127.0.0.1",
            "--port",
            PORT,
            "--config",
            str(EMULATOR_CONFIG),
            "--state",
            str(JOURNAL),
            "--rate-limit",
            "10",
        ],
        env=env,
    )
    if os.environ.get("DEV_TOOL") == "dagster":
        ui = [str(bin_dir / "dagster"), "dev", "-w", str(REPO / "workspace.yaml")]
    else:
        ui = [str(bin_dir / "dg"), "dev"]
    print(f"emulator http://127.0.0.1:{PORT} (key {API_KEY}, state {JOURNAL})")
    print(f"DAGSTER_HOME={home}  ({dagster_home.instance_file().name})")
    server = subprocess.Popen(ui, cwd=REPO, env=env)
    try:
        return server.wait()
    except KeyboardInterrupt:
        # Ctrl-C reaches the whole terminal group; a signal sent to this process alone does
        # not, so pass it on and give the UI and its daemon time to stop.
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.terminate()
        return 0
    finally:
        emulator.terminate()
        try:
            emulator.wait(timeout=10)
        except subprocess.TimeoutExpired:
            emulator.kill()


if __name__ == "__main__":
    sys.exit(main())
