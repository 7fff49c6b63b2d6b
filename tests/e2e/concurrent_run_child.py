"""Child process of ``test_concurrent_runs_duckdb``: one Dagster run of one sample audience.

``python concurrent_run_child.py <warehouse url> <emulator url> <audience> <pacing dir>``, the
API key in ``MOMENTS_CHILD_API_KEY``. Prints ``ready``, waits for a line on stdin (so that the
test releases both runs together), materializes the audience's assets and checks on an
ephemeral instance, and prints one JSON line: success, and the sync's sent count.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import dagster as dg

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from moments_pipeline.config import load_audiences  # noqa: E402
from moments_pipeline.dagster import (  # noqa: E402
    MomentsResource,
    WarehouseResource,
    build_audience_assets,
)


def main() -> int:
    warehouse_url, base_url, name, pacing_dir = sys.argv[1:5]
    audience = load_audiences(REPO / "audiences")[name]
    resources = {
        # MOMENTS_CHILD_LOCK_WAIT_S=0 shows what happens without the wait (a manual control).
        "warehouse": WarehouseResource(
            url=warehouse_url,
            duckdb_lock_wait_s=float(os.environ.get("MOMENTS_CHILD_LOCK_WAIT_S", "1800")),
        ),
        "moments": MomentsResource(
            base_url=base_url, api_key=os.environ["MOMENTS_CHILD_API_KEY"], pacing_dir=pacing_dir
        ),
    }
    print("ready", flush=True)
    sys.stdin.readline()
    result = dg.materialize(
        build_audience_assets(audience), resources=resources, raise_on_error=False
    )
    failures = [
        str(e.event_specific_data.error.message)[:2000]  # type: ignore[union-attr]
        for e in result.all_events
        if e.is_step_failure
    ]
    sync = next(
        (
            {k: v.value for k, v in m.materialization.metadata.items()}
            for m in result.get_asset_materialization_events()
            if m.asset_key.path[-1] == "flow_sync"
        ),
        {},
    )
    print(json.dumps({"success": result.success, "failures": failures, "sync": sync}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
