"""Executing asset checks never sends: launched as the UI launches them, and in process.

The UI's "Execute" on a check (``ExecuteChecksButton``) sends ``launchPipelineExecution`` with
``assetSelection: []`` and an ``assetCheckSelection``. Here that mutation runs through Dagster's
own GraphQL schema against an in-process workspace (the run launched synchronously in this
process), and the served emulator's request log must not grow: the checks are steps of their
own that read the ledger and the stored tables, never the sync op.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext, WorkspaceRequestContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster_graphql.test.utils import execute_dagster_graphql

from moments_pipeline.dagster import MomentsResource, WarehouseResource, build_audience_assets
from moments_pipeline.emulator.testing import ServedEmulator
from tests.e2e.conftest import API_KEY, REPO, SAMPLE_AUDIENCES, Rig, build_duckdb

# The synchronous launcher runs Dagster inside GraphQL's event loop; Dagster's own cleanup then
# leaves one coroutine un-awaited (a test-harness artefact, not the project's).
pytestmark = pytest.mark.filterwarnings(
    "ignore:coroutine 'BaseEventLoop.shutdown_asyncgens' was never awaited:RuntimeWarning"
)

AUDIENCE = "newsletter_welcome"
REPORT = dg.AssetKey([AUDIENCE, "flow_report"])
PARTICIPANTS = dg.AssetKey([AUDIENCE, "participants"])
STEPS = ("source", "participants", "quarantine", "flow_sync", "flow_report")
EVERYTHING = [dg.AssetKey([AUDIENCE, s]) for s in STEPS]

CHECKS_QUERY = """
query Checks($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    __typename
    ... on AssetNode {
      jobNames
      repository { name location { name } }
      assetChecksOrError {
        __typename
        ... on AssetChecks { checks { name jobNames canExecuteIndividually } }
      }
    }
  }
}
"""

LAUNCH = """
mutation Launch($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on Error { message }
  }
}
"""

DEFS = """
from moments_pipeline.dagster import MomentsResource, WarehouseResource
from moments_pipeline.dagster.definitions import build_definitions

defs = build_definitions(
    {audiences!r},
    warehouse=WarehouseResource(url={url!r}),
    moments=MomentsResource(base_url={base_url!r}, api_key={api_key!r}),
)
"""


def _resources(rig: Rig) -> dict[str, Any]:
    return {
        "warehouse": WarehouseResource(url=rig.warehouse_url),
        "moments": MomentsResource(base_url=rig.emulator.base_url, api_key=API_KEY),
    }


def _requests(rig: Rig) -> int:
    """Every request the emulator served (any operation)."""
    return len(rig.inspect("requests"))


@pytest.fixture
def rig(tmp_path: Path, served_sample_emulator: ServedEmulator) -> Rig:
    path = tmp_path / "warehouse.duckdb"
    build_duckdb(path)
    return Rig(f"duckdb:///{path}", served_sample_emulator)


@pytest.fixture
def workspace(tmp_path: Path, rig: Rig) -> Iterator[WorkspaceRequestContext]:
    """The project's definitions (one audience) in an in-process workspace, as the UI sees it."""
    audiences = tmp_path / "audiences"
    audiences.mkdir()
    shutil.copy(REPO / "audiences" / f"{AUDIENCE}.yaml", audiences)
    defs_file = tmp_path / "defs.py"
    defs_file.write_text(
        textwrap.dedent(
            DEFS.format(
                audiences=str(audiences),
                url=rig.warehouse_url,
                base_url=rig.emulator.base_url,
                api_key=API_KEY,
            )
        )
    )
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(python_file=str(defs_file), attribute="defs"),
        location_name="moments",
    )
    # Runs start at once (no queue) and execute synchronously in this process.
    overrides = {
        "run_coordinator": {
            "module": "dagster._core.run_coordinator",
            "class": "DefaultRunCoordinator",
        },
        "run_launcher": {
            "module": "dagster._core.launcher.sync_in_memory_run_launcher",
            "class": "SyncInMemoryRunLauncher",
        },
    }
    with (
        dg.instance_for_test(overrides=overrides) as instance,
        WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as process,
    ):
        yield process.create_request_context()


def _launch(
    context: WorkspaceRequestContext,
    assets: list[dg.AssetKey],
    checks: list[dg.AssetCheckKey] | None,
    *,
    job: str,
    repository: dict[str, Any],
) -> dg.DagsterRun:
    selector: dict[str, Any] = {
        "jobName": job,
        "repositoryLocationName": repository["location"]["name"],
        "repositoryName": repository["name"],
        "assetSelection": [{"path": k.path} for k in assets],
    }
    if checks is not None:
        selector["assetCheckSelection"] = [
            {"assetKey": {"path": c.asset_key.path}, "name": c.name} for c in checks
        ]
    params = {"mode": "default", "executionMetadata": {}, "runConfigData": "{}"}
    result = execute_dagster_graphql(
        context, LAUNCH, {"executionParams": {**params, "selector": selector}}
    )
    launched = result.data["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run = context.instance.get_run_by_id(launched["run"]["runId"])
    assert run is not None
    return run


def _ui_checks(context: WorkspaceRequestContext, key: dg.AssetKey) -> dict[str, Any]:
    """What the UI's check panel knows: the asset's repository and its checks' job names."""
    data = execute_dagster_graphql(context, CHECKS_QUERY, {"assetKey": {"path": key.path}}).data
    node = data["assetNodeOrError"]
    assert node["__typename"] == "AssetNode"
    return node


def _events(context: WorkspaceRequestContext, run: dg.DagsterRun) -> dict[str, list[Any]]:
    records = context.instance.all_logs(run.run_id)
    events = [r.dagster_event for r in records if r.dagster_event is not None]
    return {
        "materialized": [e for e in events if e.event_type_value == "ASSET_MATERIALIZATION"],
        "checks": [
            e.event_specific_data for e in events if e.event_type_value == "ASSET_CHECK_EVALUATION"
        ],
        "steps": sorted({e.step_key for e in events if e.step_key}),
    }


def test_executing_checks_from_the_ui_sends_nothing(
    workspace: WorkspaceRequestContext, rig: Rig
) -> None:
    report = _ui_checks(workspace, REPORT)
    checks = report["assetChecksOrError"]["checks"]
    assert len(checks) == 4
    # The UI offers "Execute" only on checks that can run without materializing the asset.
    assert {c["canExecuteIndividually"] for c in checks} == {"CAN_EXECUTE"}
    job = checks[0]["jobNames"][0]  # as ExecuteChecksButton resolves it
    repository = report["repository"]
    check_keys = [dg.AssetCheckKey(REPORT, c["name"]) for c in checks]

    # Before anything is recorded: the checks run, fail, and send nothing.
    before = _requests(rig)
    run = _launch(workspace, [], check_keys, job=job, repository=repository)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    events = _events(workspace, run)
    assert events["materialized"] == []
    assert events["steps"] == [f"{AUDIENCE}__report_checks"]
    assert len(events["checks"]) == 4 and not any(c.passed for c in events["checks"])
    assert _requests(rig) == before

    # Materialize everything, assets and checks: that sends. (In process rather than through
    # the mutation: the synchronous launcher would run the engine inside GraphQL's event loop,
    # where a real webserver hands the run to another process.)
    result = dg.materialize(
        build_audience_assets(SAMPLE_AUDIENCES[AUDIENCE]),
        resources=_resources(rig),
        instance=workspace.instance,
    )
    assert result.success
    assert len(result.get_asset_materialization_events()) == 5
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 5 and all(c.passed for c in evaluations)
    sent = _requests(rig)
    assert sent > before

    # Each check alone, then all four, then the participants' check: 0 new requests, every one
    # evaluated on the records and passing, nothing materialized.
    participants = _ui_checks(workspace, PARTICIPANTS)["assetChecksOrError"]["checks"]
    prepare_key = dg.AssetCheckKey(PARTICIPANTS, participants[0]["name"])
    for selection in [*([k] for k in check_keys), check_keys, [prepare_key]]:
        run = _launch(workspace, [], selection, job=job, repository=repository)
        assert run.status == dg.DagsterRunStatus.SUCCESS
        events = _events(workspace, run)
        assert events["materialized"] == []
        assert {(c.asset_key, c.check_name) for c in events["checks"]} == {
            (k.asset_key, k.name) for k in selection
        }
        assert all(c.passed for c in events["checks"])
        assert all(s.endswith("_checks") for s in events["steps"])
        assert _requests(rig) == sent


def test_materializing_only_the_checks_in_process_sends_nothing(rig: Rig) -> None:
    audience = SAMPLE_AUDIENCES[AUDIENCE]
    defs = build_audience_assets(audience)
    resources = _resources(rig)
    assert dg.materialize(defs, resources=resources).success
    sent = _requests(rig)
    assert sent > 0
    only_checks = dg.AssetSelection.checks_for_assets(*EVERYTHING)
    result = dg.materialize(defs, resources=resources, selection=only_checks)
    assert result.success
    assert result.get_asset_materialization_events() == []
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 5 and all(c.passed for c in evaluations)
    assert _requests(rig) == sent
