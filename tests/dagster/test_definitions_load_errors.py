"""A bad audience file makes the code location fail loudly, with the problems as its message.

Checked the two ways users meet it: ``dagster definitions validate`` (exit code and output) and
the workspace the webserver loads (a code server process per location; its load error is what
the UI shows), never an empty catalog.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget

REPO = Path(__file__).resolve().parents[2]
DAGSTER = Path(sys.executable).parent / "dagster"

BAD = """\
name: vip
source: {table: crm.customers}
identity:
  identify_by: {column: email, type: EMAIL}
  emial: [email]
flow: {campaign_id: 1}
"""
BAD_PROBLEM = "vip.yaml: line 5: identity.emial: unknown field (did you mean 'emails'?)"


@pytest.fixture
def bad_dir(tmp_path: Path) -> Path:
    audiences = tmp_path / "audiences"
    audiences.mkdir()
    shutil.copy(REPO / "audiences" / "newsletter_welcome.yaml", audiences / "ok.yaml")
    (audiences / "vip.yaml").write_text(BAD)
    (audiences / "zz.yaml").write_text(BAD.replace("name: vip", "name: zz\nname: zz"))
    return audiences


def _env(audiences: Path, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        MOMENTS_AUDIENCES_DIR=str(audiences),
        MOMENTS_WAREHOUSE_URL=f"duckdb:///{tmp_path / 'w.duckdb'}",
        INFOBIP_BASE_URL="http://127.0.0.1:9",
        INFOBIP_API_KEY="load-errors-test-key",
        DAGSTER_HOME=str(tmp_path),
    )
    return env


def _validate(env: dict[str, str], *target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DAGSTER), "definitions", "validate", *target],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_validate_fails_naming_every_bad_file_line_and_field(bad_dir: Path, tmp_path: Path) -> None:
    result = _validate(_env(bad_dir, tmp_path), "-w", "workspace.yaml")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"AudienceConfigError: {bad_dir / BAD_PROBLEM}" in output
    assert f"{bad_dir / 'zz.yaml'}: line 2: name: duplicate key 'name'" in output


def test_validate_passes_on_the_sample_audiences(tmp_path: Path) -> None:
    result = _validate(
        _env(REPO / "audiences", tmp_path), "-m", "moments_pipeline.dagster.definitions"
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_empty_audiences_directory_is_a_load_error_too(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _validate(_env(empty, tmp_path), "-m", "moments_pipeline.dagster.definitions")
    assert result.returncode != 0
    assert f"AudienceConfigError: {empty}: no audience files" in result.stdout + result.stderr


def test_the_webserver_workspace_shows_the_problems_as_the_load_error(
    bad_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in _env(bad_dir, tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(REPO)
    with dg.instance_for_test() as instance:
        target = WorkspaceFileTarget(paths=[str(REPO / "workspace.yaml")])
        # Dagster warns of the failed location as well (the error itself is checked below).
        with (
            pytest.warns(UserWarning, match="Error loading repository location"),
            WorkspaceProcessContext(instance, target) as context,
        ):
            [entry] = context.create_request_context().get_code_location_entries().values()
    assert entry.code_location is None
    error = entry.load_error
    assert error is not None
    # What the UI puts first: the problems themselves, not "Error occurred during the loading
    # of Dagster definitions in ..." with the problems at the bottom of a traceback.
    assert error.cls_name == "AudienceConfigError"
    first, *rest = error.message.splitlines()
    assert (
        first
        == f"moments_pipeline.dagster.definitions.AudienceConfigError: {bad_dir / BAD_PROBLEM}"
    )
    assert any(line.startswith(f"{bad_dir / 'zz.yaml'}: line 2: ") for line in rest)
