"""Forms given in the emulator config: completed to the spec's ApiFormDto, or refused clearly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette

from moments_pipeline.emulator import ConfigError, EmulatorSettings, load_settings
from moments_pipeline.emulator.testing import EmulatorTransport
from tests.fixtures.emulator import TEST_API_KEY

MINIMAL_FORM = {
    "id": "configured-optin",
    "elements": [
        {"component": "EMAIL", "fieldId": "email", "personField": "email", "isRequired": True}
    ],
}


@pytest.mark.parametrize(
    "form_yaml",
    [
        "{name: No id, formStatus: ACTIVE}",
        "{id: '  ', name: Blank id}",
        "{id: 42, name: Numeric id}",
    ],
)
def test_a_configured_form_without_an_id_names_file_and_field(
    tmp_path: Path, form_yaml: str
) -> None:
    config = tmp_path / "emulator.yaml"
    config.write_text(f"forms:\n  - {{id: ok}}\n  - {form_yaml}\n")
    with pytest.raises(ConfigError, match=r"emulator\.yaml.*forms\.1: .*field 'id' is required"):
        load_settings(config)


def test_settings_refuse_a_form_without_an_id() -> None:
    with pytest.raises(ValidationError, match="field 'id' is required"):
        EmulatorSettings(forms=[{"name": "nameless"}])


async def test_a_configured_form_is_served_complete(
    make_emulator_app: Callable[..., Starlette], tmp_path: Path
) -> None:
    config = tmp_path / "emulator.json"
    config.write_text('{"forms": [{"id": "configured-optin", "elements": []}]}')
    assert load_settings(config).forms == [{"id": "configured-optin", "elements": []}]
    app = make_emulator_app(forms=[MINIMAL_FORM])
    async with httpx.AsyncClient(
        transport=EmulatorTransport(app),
        base_url="http://emulator.test",
        headers={"Authorization": f"App {TEST_API_KEY}"},
    ) as client:
        got = await client.get("/forms/1/forms/configured-optin")
        listed = await client.get("/forms/1/forms", params={"limit": 100})
        submitted = await client.post(
            "/forms/1/forms/configured-optin/data", json={"email": "ann@example.com"}
        )
    # The contract fixture validates these answers against ApiFormDto (name, formType,
    # formStatus, resubmitEnabled, createdAt, updatedAt are required there).
    assert got.status_code == 200
    form = got.json()
    assert form["id"] == "configured-optin"
    assert form["name"] == "configured-optin"
    assert (form["formType"], form["formStatus"], form["resubmitEnabled"]) == (
        "OPT_IN",
        "ACTIVE",
        True,
    )
    assert form["createdAt"] == form["updatedAt"] == "2026-01-01T00:00:00.000+0000"
    assert "configured-optin" in [f["id"] for f in listed.json()["forms"]]
    assert submitted.status_code == 200
    # reset restores the configured form as first completed, not a bare config entry
    emulator = app.state.emulator
    emulator.forms["configured-optin"]["name"] = "changed"
    emulator.reset()
    assert emulator.forms["configured-optin"]["name"] == "configured-optin"
