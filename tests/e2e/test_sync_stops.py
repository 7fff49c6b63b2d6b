"""In Dagster, a sync that cannot succeed fails its step, naming the flow or the account problem.

A missing flow (404 40401), a refused key (401), exhausted credits, and a wrong key with
nothing to send: the ``<audience>__sync`` step fails with a ``dg.Failure`` whose description
says what is wrong, no ``flow_report`` is materialized (nothing in it would be final), and the
batches not sent stay PLANNED for the next run, which sends them once the cause is fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dagster as dg
import pandas as pd

from moments_pipeline.config import AudienceConfig, parse_audience
from moments_pipeline.dagster import MomentsResource, build_audience_assets
from moments_pipeline.emulator import FlowConfig
from moments_pipeline.emulator.flows import FlowState
from moments_pipeline.warehouse import connect_warehouse
from tests.e2e.conftest import Rig

MISSING_FLOW = 200000000000404
KNOWN_FLOW = 200000000000001


def _frame(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rid": [f"r{i}" for i in range(n)],
            "email": [f"stop{i}@example.com" for i in range(n)],
            "phone": [f"+4179{i:07d}" for i in range(n)],
        }
    )


def _audience(campaign_id: int, name: str = "stops") -> AudienceConfig:
    return parse_audience(
        {
            "name": name,
            "source": {"table": f"{name}_rows", "row_id_column": "rid"},
            "identity": {
                "identify_by": {"column": "email", "type": "EMAIL"},
                "emails": ["email"],
                "phones": ["phone"],
                "default_region": "CH",
            },
            "flow": {"campaign_id": campaign_id},
            "report": {"deadline_s": 20, "max_rejection_rate": 0.5},
        }
    )


def _materialize(rig: Rig, audience: AudienceConfig, **moments: Any) -> dg.ExecuteInProcessResult:
    resources = dict(rig.resources)
    if moments:
        resources["moments"] = MomentsResource(base_url=rig.emulator.base_url, **moments)
    assets = build_audience_assets(audience)
    return dg.materialize(assets, resources=resources, raise_on_error=False)


def _sync_failure(result: dg.ExecuteInProcessResult, audience: AudienceConfig) -> str:
    assert not result.success
    failures = [
        e for e in result.get_step_failure_events() if (e.step_key or "").endswith("__sync")
    ]
    assert len(failures) == 1, [e.step_key for e in result.get_step_failure_events()]
    data = failures[0].step_failure_data
    assert data.user_failure_data is not None, "a dg.Failure, not a crash"
    description = data.user_failure_data.description or ""
    assert f"audience {audience.name!r}" in description
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert dg.AssetKey([audience.name, "flow_report"]) not in materialized
    assert dg.AssetKey([audience.name, "flow_sync"]) not in materialized
    return description


def _batch_states(rig: Rig, campaign_id: int) -> set[str]:
    warehouse = connect_warehouse(rig.warehouse_url)
    try:
        rows = warehouse.fetch_all(
            "SELECT DISTINCT state FROM moments_sync_outbox WHERE campaign_id = ?", [campaign_id]
        )
    finally:
        warehouse.close()
    return {r[0] for r in rows}


def test_a_missing_flow_fails_the_step_naming_it_and_a_later_run_sends_everyone(
    make_rig: Callable[[dict[str, Any]], Rig],
) -> None:
    audience = _audience(MISSING_FLOW)
    rig = make_rig({"stops_rows": _frame(30)})
    description = _sync_failure(_materialize(rig, audience), audience)
    assert f"flow {MISSING_FLOW} is missing or not active" in description
    assert "40401" in description
    assert _batch_states(rig, MISSING_FLOW) == {"PLANNED"}  # never REJECTED, never HELD
    assert rig.add_requests() == 1  # stopped at the first answer

    rig.emulator.emulator.flows[MISSING_FLOW] = FlowState(FlowConfig(campaign_id=MISSING_FLOW))
    result = _materialize(rig, audience)
    assert result.success
    assert len(rig.inspect(f"flows/{MISSING_FLOW}/participants")) == 30
    assert _batch_states(rig, MISSING_FLOW) == {"REPORTED"}


def test_a_refused_key_fails_the_step_without_showing_it(
    make_rig: Callable[[dict[str, Any]], Rig],
) -> None:
    audience = _audience(KNOWN_FLOW)
    rig = make_rig({"stops_rows": _frame(5)})
    result = _materialize(rig, audience, api_key="wrong-key-e2e-5d1f")
    description = _sync_failure(result, audience)
    assert "refused the API key" in description and "HTTP_401" in description
    assert "wrong-key-e2e" not in description
    assert _batch_states(rig, KNOWN_FLOW) == {"PLANNED"}


def test_exhausted_credits_fail_the_step_naming_credits(
    make_rig: Callable[[dict[str, Any]], Rig],
) -> None:
    audience = _audience(KNOWN_FLOW)
    rig = make_rig({"stops_rows": _frame(30)})
    rig.emulator.emulator.credits_left = 3
    description = _sync_failure(_materialize(rig, audience), audience)
    assert "out of credits" in description and "REJECTED_NOT_ENOUGH_CREDITS" in description


def test_a_wrong_key_with_nothing_to_send_fails_the_step(
    make_rig: Callable[[dict[str, Any]], Rig],
) -> None:
    audience = _audience(KNOWN_FLOW, name="empty")
    rig = make_rig({"empty_rows": _frame(0)})
    assert _materialize(rig, audience).success  # nothing to send, good key: green
    result = _materialize(rig, audience, api_key="wrong-key-e2e-0000")
    description = _sync_failure(result, audience)
    assert "refused the API key" in description
    assert rig.add_requests() == 0
