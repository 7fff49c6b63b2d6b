"""The dg project and its MomentsAudiences component: one loader and one builder with the workspace.

- The project's defs folder and ``dagster dev -w workspace.yaml`` give the same definitions.
- The component honours Dagster's ``defs.yaml`` keys (``post_processing``) and reads a relative
  audiences directory from its own folder; a bad audience file fails it with file, line, field.
- ``dg check defs`` and ``dg list defs`` work from the repository root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.defs_state.base import set_defs_state_storage
from dagster.components.testing import create_defs_folder_sandbox

from moments_pipeline.config import ConfigError
from moments_pipeline.dagster import MomentsAudiences
from moments_pipeline.dagster.definitions import definitions_from_env

REPO = Path(__file__).resolve().parents[2]
AUDIENCES = REPO / "audiences"
DG = Path(sys.executable).with_name("dg")
COMPONENT = "moments_pipeline.dagster.MomentsAudiences"


@pytest.fixture
def project_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {
        "MOMENTS_AUDIENCES_DIR": str(AUDIENCES),
        "MOMENTS_WAREHOUSE_URL": f"duckdb:///{tmp_path / 'w.duckdb'}",
        "INFOBIP_BASE_URL": "http://127.0.0.1:9",
        "INFOBIP_API_KEY": "component-test-key",
        "DAGSTER_HOME": str(tmp_path / "home"),
    }
    (tmp_path / "home").mkdir()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # Loading a defs folder sets Dagster's process-wide defs-state storage to this test's
    # instance (deleted with tmp_path); restore it so later tests do not reach for it.
    with set_defs_state_storage(None):
        yield env


def _catalog(defs: dg.Definitions) -> dict[str, object]:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in graph.get_all_asset_keys():
        spec = graph.get(key).to_asset_spec()
        assets[key.to_user_string()] = (
            spec.description,
            spec.group_name,
            sorted(spec.kinds),
            sorted(spec.owners),
            {k: v for k, v in spec.tags.items()},
            sorted(d.asset_key.to_user_string() for d in spec.deps),
        )
    return {
        "assets": assets,
        "checks": sorted(k.to_user_string() for k in graph.asset_check_keys),
        "schedules": sorted(s.name for s in defs.schedules or []),
        "jobs": sorted(j.name for j in defs.jobs or []),
        "resources": sorted(defs.resources or {}),
    }


def test_the_defs_folder_and_the_workspace_give_the_same_definitions(
    project_env: dict[str, str],
) -> None:
    project = dg.load_from_defs_folder(path_within_project=REPO)
    workspace = definitions_from_env()
    dg.Definitions.validate_loadable(project)
    mine, theirs = _catalog(project), _catalog(workspace)
    assert mine == theirs
    assert "loyalty_customers__schedule" in mine["schedules"]  # type: ignore[operator]
    assert {"sync_all_audiences", "dry_run_all_audiences"} <= set(mine["jobs"])  # type: ignore[call-overload]


def test_post_processing_and_a_relative_audiences_dir(project_env: dict[str, str]) -> None:
    with create_defs_folder_sandbox() as sandbox:
        defs_path = sandbox.defs_folder_path / "crm_audiences"
        (defs_path / "audiences").mkdir(parents=True)
        shutil.copy(AUDIENCES / "newsletter_welcome.yaml", defs_path / "audiences")
        (defs_path / "defs.yaml").write_text(
            f"""
type: {COMPONENT}
attributes:
  audiences_dir: audiences
requirements:
  env: [INFOBIP_BASE_URL, INFOBIP_API_KEY]
post_processing:
  assets:
    - target: "*"
      attributes:
        owners: ["team:growth"]
        tags: {{tier: gold}}
"""
        )
        with sandbox.load_component_and_build_defs(defs_path=defs_path) as (component, defs):
            assert isinstance(component, MomentsAudiences)
            assert component.audiences_dir == "audiences"
            graph = defs.resolve_asset_graph()
            keys = {k for k in graph.get_all_asset_keys() if k.path[0] == "newsletter_welcome"}
            assert len(keys) == 5
            for key in keys:
                spec = graph.get(key).to_asset_spec()
                assert "team:growth" in spec.owners
                assert spec.tags["tier"] == "gold"
                assert spec.tags["moments/audience"] == "newsletter_welcome"


def test_a_bad_audience_file_fails_the_component_naming_file_line_and_field(
    project_env: dict[str, str],
) -> None:
    with create_defs_folder_sandbox() as sandbox:
        defs_path = sandbox.defs_folder_path / "audiences"
        (defs_path / "files").mkdir(parents=True)
        bad = (AUDIENCES / "newsletter_welcome.yaml").read_text() + "schedule: {cron: 61 * * * *}\n"
        (defs_path / "files" / "bad.yaml").write_text(bad)
        (defs_path / "defs.yaml").write_text(
            f"type: {COMPONENT}\nattributes:\n  audiences_dir: files\n"
        )
        line = len(bad.splitlines())
        with (
            pytest.raises(Exception) as caught,
            sandbox.load_component_and_build_defs(defs_path=defs_path),
        ):
            pass
    # Dagster wraps it in its component-tree error; the problem list is the cause, intact.
    chain: list[BaseException] = [caught.value]
    while chain[-1].__cause__ is not None:
        chain.append(chain[-1].__cause__)
    assert isinstance(chain[-1], ConfigError), chain
    message = str(chain[-1])
    assert f"bad.yaml: line {line}: schedule.cron: '61 * * * *': minute: 61" in message, message


def _dg(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DG), *args],
        cwd=REPO,
        env={**os.environ, **env, "VIRTUAL_ENV": str(Path(sys.executable).parents[1])},
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_dg_check_and_list_defs_work_from_the_repository_root(
    project_env: dict[str, str],
) -> None:
    checked = _dg("check", "defs", env=project_env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    listed = _dg("list", "defs", "--json", env=project_env)
    assert listed.returncode == 0, listed.stderr
    defs = json.loads(listed.stdout)
    keys = {a["asset_key"] for a in defs["assets"]}
    assert {"loyalty_customers/source", "loyalty_customers/flow_report"} <= keys
    (schedule,) = [s for s in defs["schedules"] if s["name"] == "loyalty_customers__schedule"]
    assert schedule["cron_schedule"] == "0 6 * * *"
    loyalty = next(a for a in defs["assets"] if a["asset_key"] == "loyalty_customers/source")
    # The UI's code reference: the audience's own YAML file and line.
    assert loyalty["source"].startswith("audiences/loyalty_customers.yaml:")
    assert loyalty["owners"] == [{"team": "crm"}]  # dg's JSON splits team owners
    assert "duckdb" in loyalty["kinds"]
    assert "component-test-key" not in listed.stdout + listed.stderr
