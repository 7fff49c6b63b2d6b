"""The autouse contract fixture end to end: it fails a test whose emulator broke the spec.

A small test file is run by a pytest subprocess with the project's fixture plugins: one test
makes the emulator answer a malformed form, one behaves. Only the first must fail, with the
violation named; a test that never touches the emulator must not even load the spec.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import httpx

from moments_pipeline.emulator.testing import EmulatorTransport
from tests.fixtures.emulator import TEST_API_KEY

FORM = "/forms/1/forms/f23f0f7c-9898-4feb-8f21-5afe2c29db7e"


def test_without_emulator():
    # Runs first (file order): a test that never touches the emulator loads no spec.
    import sys

    assert "openapi_core" not in sys.modules


async def _get(app):
    async with httpx.AsyncClient(
        transport=EmulatorTransport(app),
        base_url="http://emulator.test",
        headers={"Authorization": f"App {TEST_API_KEY}"},
    ) as client:
        return await client.get(FORM)


async def test_breaks_the_contract(emulator_app, emulator):
    emulator.forms["f23f0f7c-9898-4feb-8f21-5afe2c29db7e"]["resubmitEnabled"] = "yes"
    assert (await _get(emulator_app)).status_code == 200


async def test_keeps_the_contract(emulator_app):
    assert (await _get(emulator_app)).status_code == 200


async def test_dynamic_use_is_seen_too(request):
    app = request.getfixturevalue("emulator_app")
    app.state.emulator.forms["f23f0f7c-9898-4feb-8f21-5afe2c29db7e"].pop("name")
    assert (await _get(app)).status_code == 200

"""


def test_contract_fixture_fails_exactly_the_offending_tests(tmp_path: Path) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-c",
        str(REPO / "pyproject.toml"),
        "--rootdir",
        str(REPO),
        str(probe),
    ]
    for plugin in ("tests.fixtures.spec", "tests.fixtures.emulator", "tests.fixtures.contract"):
        command[4:4] = ["-p", plugin]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    output = done.stdout + done.stderr
    assert "2 failed, 2 passed" in output, output
    assert "FAILED" in output and "test_breaks_the_contract" in output
    assert "test_dynamic_use_is_seen_too" in output
    assert "break the Moments OpenAPI contract" in output
    assert "$['resubmitEnabled']: 'yes' is not of type 'boolean'" in output
    assert "'name' is a required property" in output
    assert "test_keeps_the_contract" not in output.split("short test summary")[-1]
