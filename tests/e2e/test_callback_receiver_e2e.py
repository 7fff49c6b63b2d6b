"""Through Dagster with a served notifyUrl receiver: the emulator's real callbacks resolve every
batch, nothing is refused, and the run's secret path token shows nowhere (metadata, logs)."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from moments_pipeline.emulator.testing import ServedEmulator
from moments_pipeline.infobip import _receiver
from tests.e2e.conftest import SAMPLE_AUDIENCES, Rig, build_duckdb

TOKEN = secrets.token_urlsafe(32)


def test_callbacks_resolve_batches_and_the_token_stays_secret(
    tmp_path: Path,
    served_sample_emulator: ServedEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # Every receiver of this run gets the known token, so the test can look for it.
    monkeypatch.setattr(_receiver.secrets, "token_urlsafe", lambda _n: TOKEN)
    path = tmp_path / "warehouse.duckdb"
    build_duckdb(path)
    rig = Rig(f"duckdb:///{path}", served_sample_emulator, callbacks=True)
    audience = next(iter(SAMPLE_AUDIENCES.values()))

    result = rig.materialize([audience])

    assert result.success
    (sync,) = [
        {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey([audience.name, "flow_sync"])
    ]
    sent: Any = sync["moments/sent_requests"]
    assert sent > 0
    assert sync["moments/reports_by_callback"] == sync["moments/sent_requests"]
    assert sync["moments/reports_by_polling"] == 0
    assert sync["moments/callbacks_rejected"] == 0 == sync["moments/callbacks_unknown"]
    # The notifyUrl Infobip got holds the token (it must); nothing Dagster keeps does.
    attempts = rig.inspect("callbacks")
    assert attempts and all(TOKEN in a["url"] and a["status"] == 200 for a in attempts)
    assert TOKEN not in repr(result.all_events)
    ours = [r for r in caplog.records if r.name.startswith(("moments_pipeline", "dagster"))]
    assert not any(TOKEN in r.getMessage() for r in ours)
