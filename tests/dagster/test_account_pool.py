"""The account's sending step is in one Dagster pool, and the resource shares its rate budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from moments_pipeline.dagster import MomentsResource, build_audience_assets
from moments_pipeline.dagster._resources import ACCOUNT_POOL
from tests.e2e.conftest import SAMPLE_AUDIENCES


def test_only_the_sync_step_is_in_the_account_pool() -> None:
    assets = build_audience_assets(SAMPLE_AUDIENCES["cart_abandoners"])
    pools = {a.op.name: a.op.pool for a in assets if hasattr(a, "op")}
    assert pools["cart_abandoners__sync"] == ACCOUNT_POOL
    assert pools["cart_abandoners__source"] is None
    assert pools["cart_abandoners__prepare"] is None


def test_the_resource_shares_the_budget_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.delenv("MOMENTS_PACING_DIR", raising=False)
    resource = MomentsResource(base_url="https://x.api.infobip.com", api_key="k-123")
    assert resource.client_config().pacing_dir == str(tmp_path / "moments_pacing")
    chosen = MomentsResource(
        base_url="https://x.api.infobip.com", api_key="k-123", pacing_dir=str(tmp_path / "p")
    )
    assert chosen.client_config().pacing_dir == str(tmp_path / "p")
    alone = MomentsResource(
        base_url="https://x.api.infobip.com", api_key="k-123", shared_pacing=False
    )
    assert alone.client_config().pacing_dir is None
