"""A real Dagster run of a sample audience shows its progress lines in the run's event log."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg

from moments_pipeline.dagster import build_audience_assets
from moments_pipeline.emulator.testing import ServedEmulator
from tests.e2e.conftest import SAMPLE_AUDIENCES, Rig, build_duckdb

LINE = re.compile(r"sent (\d+)/(\d+) participants \((\d+) requests\), [\d.]+ req/s, (ETA|done)")


def test_the_run_log_shows_progress_lines(
    tmp_path: Path, served_sample_emulator: ServedEmulator
) -> None:
    build_duckdb(tmp_path / "warehouse.duckdb")
    sample_rig = Rig(f"duckdb:///{tmp_path / 'warehouse.duckdb'}", served_sample_emulator)
    audience = SAMPLE_AUDIENCES["cart_abandoners"]
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        build_audience_assets(audience), resources=sample_rig.resources, instance=instance
    )
    assert result.success
    messages = [
        e.user_message
        for e in instance.all_logs(result.run_id)
        if e.user_message.startswith(f"{audience.name}: sent ")
    ]
    parsed = [LINE.search(m) for m in messages]
    assert len(messages) >= 2 and all(parsed), messages
    counts = [(int(m[1]), int(m[2])) for m in parsed if m]
    assert counts[0][0] == 0 and counts[-1][0] == counts[-1][1] > 0
    assert [c[0] for c in counts] == sorted(c[0] for c in counts)
    assert messages[-1].endswith("done")
