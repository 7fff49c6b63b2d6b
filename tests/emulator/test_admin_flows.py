"""Flows added to a running emulator (``POST /_emulator/flows``), kept by ``--state``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from moments_pipeline.emulator import EmulatorSettings, ManualClock, create_app
from moments_pipeline.emulator.testing import EmulatorTransport, ServedEmulator
from tests.emulator.conftest import email

AUTH = {"Authorization": "App test-key"}
NEW = 300000000000777
ADD = f"/moments/1/flows/{NEW}/participants"


def _client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=EmulatorTransport(app), base_url="http://e", headers=AUTH)


async def test_a_flow_added_at_run_time_takes_participants(emulator_app: Starlette) -> None:
    async with _client(emulator_app) as client:
        missing = await client.post(ADD, json={"participants": [email("a@x.com")]})
        assert missing.status_code == 404
        created = await client.post(
            "/_emulator/flows", json={"campaignId": NEW, "name": "Try-out flow"}
        )
        assert created.status_code == 201
        assert created.json() == {
            "campaignId": NEW,
            "name": "Try-out flow",
            "active": True,
            "allowReentry": False,
            "participants": 0,
        }
        added = await client.post(ADD, json={"participants": [email("a@x.com")]})
        assert added.status_code == 200 and added.json()["operationId"]
        emulator_app.state.emulator.advance(5)
        flows = {f["campaignId"]: f for f in (await client.get("/_emulator/flows")).json()}
        assert flows[NEW]["participants"] == 1 and flows[NEW]["name"] == "Try-out flow"
        assert len(flows) > 1  # the seeded flows are still there

        # Changing it keeps its members; an inactive flow answers like a missing one.
        changed = await client.post("/_emulator/flows", json={"campaignId": NEW, "active": False})
        assert changed.status_code == 200 and changed.json()["participants"] == 1
        refused = await client.post(ADD, json={"participants": [email("b@x.com")]})
        assert refused.status_code == 404 and refused.json()["errorCode"] == "40401"

        await client.post("/_emulator/reset")
        flows = {f["campaignId"] for f in (await client.get("/_emulator/flows")).json()}
        assert NEW not in flows  # a reset returns to the configured flows


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "no id"}, "campaignId"),
        ({"campaignId": -4}, "campaignId"),
        ({"campaignId": NEW, "colour": "red"}, "colour"),
        ({"campaignId": NEW, "active": "maybe"}, "active"),
    ],
)
async def test_a_bad_flow_body_is_refused_naming_the_field(
    emulator_app: Starlette, body: dict[str, Any], field: str
) -> None:
    async with _client(emulator_app) as client:
        answer = await client.post("/_emulator/flows", json=body)
        assert answer.status_code == 400
        assert [p["field"] for p in answer.json()["error"]] == [field]
        assert NEW not in emulator_app.state.emulator.flows


async def test_not_json_is_refused(emulator_app: Starlette) -> None:
    async with _client(emulator_app) as client:
        answer = await client.post("/_emulator/flows", content=b"{nope")
        assert answer.status_code == 400


@pytest.mark.parametrize("clean", [True, False], ids=["compacted", "journal-replayed"])
async def test_added_flows_and_their_members_survive_a_restart(
    tmp_path: Path, emulator_settings: EmulatorSettings, emulator_registry: list[Any], clean: bool
) -> None:
    settings = emulator_settings.model_copy(update={"state_path": tmp_path / "state.jsonl"})
    clock = ManualClock()
    app = create_app(settings, clock=clock)
    emulator_registry.append(app)
    async with _client(app) as client:
        await client.post("/_emulator/flows", json={"campaignId": NEW, "name": "kept"})
        assert (await client.post(ADD, json={"participants": [email("a@x.com")]})).is_success
    app.state.emulator.advance(5)
    before = app.state.emulator.snapshot()
    if clean:
        await app.state.emulator.aclose()
    again = create_app(settings, clock=clock).state.emulator
    emulator_registry.append(again)
    assert again.flows[NEW].config.name == "kept"
    assert again.snapshot() == before


def test_served_with_state_keeps_an_added_flow_after_kill(
    tmp_path: Path, emulator_registry: list[Any]
) -> None:
    settings = EmulatorSettings(rate_limit_per_s=None, record_exchanges=True)
    state = tmp_path / "state.jsonl"
    served = ServedEmulator(settings, subprocess=True, manual_clock=True, state_path=state)
    emulator_registry.append(served)
    with served:
        with httpx.Client(base_url=served.base_url, headers=AUTH) as client:
            created = client.post("/_emulator/flows", json={"campaignId": NEW, "name": "live"})
            assert created.status_code == 201
            assert client.post(ADD, json={"participants": [email("a@x.com")]}).status_code == 200
        served.kill()
        served.start()
        with httpx.Client(base_url=served.base_url, headers=AUTH) as client:
            flows = {f["campaignId"]: f for f in client.get("/_emulator/flows").json()}
            assert flows[NEW]["name"] == "live"
            assert client.post(ADD, json={"participants": [email("b@x.com")]}).status_code == 200
