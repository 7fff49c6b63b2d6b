"""Materialize one sample audience into the instance of ``DAGSTER_HOME``, as a child process.

Run by ``tests/ui/conftest.py`` as ``materialize_sample.py WORKSPACE_YAML`` with the environment
of the webserver under test. It loads the code location exactly as the webserver's workspace
file names it, so the browser test sees the same definitions as the UI. It runs in a fresh
interpreter because the definitions read the environment when they are loaded, and the pytest
process may have loaded them already with another environment.

Prints one JSON object as its last line: the location's groups and number of assets, its
schedules and sensors (each with the asset groups it targets), the audience materialized (and
partition, if any), the materializations' metadata by step and the asset check evaluations.
Exits 0 even when the run failed: the test reads ``success``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster._core.code_pointer import CodePointer
from dagster._core.definitions.reconstruct import initialize_repository_def_from_pointer

REPO = Path(__file__).resolve().parents[2]
#: Smallest sample first: the test needs one materialization, not the biggest.
PREFERRED = ("newsletter_welcome", "cart_abandoners", "loyalty_customers")
#: Dagster's step-by-step DEBUG events stay in the instance, not on this process's stdout.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _pointer(workspace_file: Path) -> CodePointer:
    """The first code location of a workspace file, whichever form it takes."""
    workspace = yaml.safe_load(workspace_file.read_text())
    entry = workspace["load_from"][0]
    ((kind, spec),) = entry.items()
    if isinstance(spec, str):  # the short form: `python_module: package.module`
        spec = {"module_name": spec}
    cwd = str(REPO / spec.get("working_directory", "."))
    attribute = spec.get("attribute")
    if kind == "python_module":
        return CodePointer.from_module(spec["module_name"], attribute, cwd)
    if kind == "python_package":
        return CodePointer.from_python_package(spec["package_name"], attribute, cwd)
    if kind == "python_file":
        return CodePointer.from_python_file(str(REPO / spec["relative_path"]), attribute, cwd)
    raise SystemExit(f"{workspace_file}: unsupported load_from entry {kind!r}")


def _choose(repo: Any, groups: list[str]) -> tuple[str, list[dg.AssetKey], str | None]:
    """An audience (group) to materialize, unpartitioned if any is; else its last partition."""
    keys_by_group: dict[str, list[dg.AssetKey]] = {}
    partitions: dict[str, Any] = {}
    for node in repo.asset_graph.asset_nodes:
        if node.group_name and node.is_materializable:
            keys_by_group.setdefault(node.group_name, []).append(node.key)
            partitions[node.group_name] = partitions.get(node.group_name) or node.partitions_def
    order = [g for g in PREFERRED if g in keys_by_group] + [
        g for g in groups if g not in PREFERRED and g in keys_by_group
    ]
    for group in order:
        if partitions[group] is None:
            return group, keys_by_group[group], None
    group = order[0]
    return group, keys_by_group[group], partitions[group].get_last_partition_key()


def _target_groups(repo: Any, definition: Any) -> list[str]:
    """Asset groups a schedule or sensor requests runs of."""
    selection = getattr(definition, "asset_selection", None)
    if selection is not None:
        keys = selection.resolve(repo.asset_graph)
    elif definition.job_name:
        keys = repo.get_job(definition.job_name).asset_layer.selected_asset_keys
    else:
        keys = set()
    return sorted({repo.asset_graph.get(k).group_name for k in keys})


def _value(value: Any) -> Any:
    raw = getattr(value, "value", value)
    # Only plain JSON values matter to the test (counts); the rest (schemas, tables) as text.
    try:
        json.dumps(raw)
    except Exception:
        return str(raw)
    return raw


def main() -> int:
    repo = initialize_repository_def_from_pointer(_pointer(Path(sys.argv[1])))
    groups = sorted({n.group_name for n in repo.asset_graph.asset_nodes if n.group_name})
    audience, keys, partition = _choose(repo, groups)
    job = repo.get_implicit_job_def_for_assets(keys)
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            asset_selection=keys,
            partition_key=partition,
            raise_on_error=False,
            run_config=QUIET,
        )
    materializations = {
        event.asset_key.to_user_string(): {
            k: _value(v) for k, v in event.materialization.metadata.items()
        }
        for event in result.get_asset_materialization_events()
    }
    checks = [
        {"asset": c.asset_key.to_user_string(), "name": c.check_name, "passed": c.passed}
        for c in result.get_asset_check_evaluations()
    ]
    print(
        json.dumps(
            {
                "groups": groups,
                "assets": len(list(repo.asset_graph.asset_nodes)),
                "schedules": {s.name: _target_groups(repo, s) for s in repo.schedule_defs},
                "sensors": {s.name: _target_groups(repo, s) for s in repo.sensor_defs},
                "audience": audience,
                "partition": partition,
                "run_id": result.run_id,
                "success": result.success,
                "materializations": materializations,
                "checks": checks,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
