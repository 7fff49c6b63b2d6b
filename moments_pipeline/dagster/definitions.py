"""The project's ``Definitions``: every audience YAML of a directory, wired to env-var resources.

Loaded by ``dagster dev -w workspace.yaml`` (module ``moments_pipeline.dagster.definitions``,
attribute ``defs``) and by ``scripts/demo.py``. Configuration comes from the environment only:

- ``MOMENTS_AUDIENCES_DIR``: directory of audience YAML files (default ``audiences/`` at the
  repository root);
- ``MOMENTS_WAREHOUSE_URL``: warehouse URL (default the sample DuckDB file
  ``.demo/warehouse.duckdb`` at the repository root);
- ``MOMENTS_SOURCE_<NAME>_URL``: URL of the source connection ``<name>`` for each
  ``source.connection`` other than ``warehouse`` that the audiences name (an audience naming one
  that is not set fails the load, naming file and connection); ``MOMENTS_SOURCE_TIMEOUT_S``:
  statement timeout of a source read on PostgreSQL (default 300);
- ``INFOBIP_BASE_URL`` / ``INFOBIP_API_KEY``: the account, read by Dagster at run time through
  ``EnvVar`` so their values never appear in the UI or in run config;
- ``MOMENTS_CALLBACK_HOST`` (and optionally ``MOMENTS_CALLBACK_PORT``,
  ``MOMENTS_CALLBACK_PUBLIC_URL``): serve a notifyUrl receiver during each sync so reports arrive
  by callback instead of being polled; unset, reports are polled.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from moments_pipeline.config import (
    DEFAULT_AUDIENCES_DIR,
    DEFAULT_WAREHOUSE_URL,
    LEDGER_CONNECTION,
    AudienceConfig,
    ConfigError,
    ConfigErrors,
    field_lines,
    load_audiences,
    read_audiences,
    source_url_env_var,
)
from moments_pipeline.dagster._factory import build_audience_assets
from moments_pipeline.dagster._resources import MomentsResource, WarehouseResource


class AudienceConfigError(ConfigErrors, dg.DagsterInvalidDefinitionError):
    """The audience files cannot make definitions; the message is the list of problems.

    A ``ConfigError`` for callers of this module, and a Dagster error so that the code server
    reports it as it is: any other exception raised while loading is wrapped in a
    ``DagsterUserCodeLoadError`` whose message only names the module, leaving the problems
    at the bottom of a traceback in the UI.
    """


def _load_audiences_loudly(audiences_dir: Path | str) -> dict[str, AudienceConfig]:
    try:
        audiences = load_audiences(audiences_dir)
    except ConfigError as exc:
        raise AudienceConfigError(exc.path, exc.errors) from None
    if not audiences:
        # An empty catalog with no word of why is the failure this guards against.
        problem = (
            "no audience files (*.yaml, *.yml) here (MOMENTS_AUDIENCES_DIR chooses the directory)"
        )
        raise AudienceConfigError(audiences_dir, [ConfigError(audiences_dir, [problem])])
    return audiences


def build_definitions(
    audiences_dir: Path | str,
    *,
    warehouse: WarehouseResource,
    moments: MomentsResource,
) -> dg.Definitions:
    """Build definitions for every audience in ``audiences_dir``.

    Args:
        audiences_dir: Directory (or single file) of audience YAML definitions.
        warehouse: The warehouse resource (bound as ``warehouse``).
        moments: The Infobip resource (bound as ``moments``).

    Raises:
        AudienceConfigError: Audience files are invalid, or there are none (every problem
            listed, each naming file, line and field).
    """
    assets: list[dg.AssetsDefinition] = []
    audiences = _load_audiences_loudly(audiences_dir)
    _check_source_connections(audiences_dir, audiences, warehouse)
    for audience in audiences.values():
        assets.extend(build_audience_assets(audience))
    return dg.Definitions(
        assets=assets,
        resources={"warehouse": warehouse, "moments": moments},
        jobs=[dg.define_asset_job("sync_all_audiences", selection=dg.AssetSelection.all())],
        # One process per run: the account's 10 requests/s budget is per process (separate
        # step processes would each send at the full rate), an embedded DuckDB file admits one
        # writing process, and audiences of one account then sync one after the other.
        executor=dg.in_process_executor,
    )


def _check_source_connections(
    audiences_dir: Path | str, audiences: dict[str, AudienceConfig], warehouse: WarehouseResource
) -> None:
    # A source connection nobody configured is refused while loading, not when a run reads.
    unknown = warehouse.unknown_connections(audiences.values())
    if not unknown:
        return
    files = read_audiences(audiences_dir).files
    configured = ", ".join(warehouse.connection_names())
    errors = []
    for name, connection in unknown.items():
        file = files.get(name, Path(audiences_dir))
        line = field_lines(file).get("source.connection")
        where = f"line {line}: " if line else ""
        errors.append(
            ConfigError(
                file,
                [
                    f"{where}source.connection: audience {name!r} reads from connection "
                    f"{connection!r}, which is not configured (configured: {configured}; "
                    f"set {source_url_env_var(connection)} or WarehouseResource.sources)"
                ],
            )
        )
    raise AudienceConfigError(audiences_dir, errors)


def _sources_from_env(audiences_dir: Path | str) -> dict[str, str]:
    # Only the connections the audiences name; each as an EnvVar, so the UI shows the
    # variable's name and never a password. Unset ones are reported by build_definitions.
    connections = {a.source.connection for a in read_audiences(audiences_dir).audiences.values()}
    return {
        name: dg.EnvVar(source_url_env_var(name))
        for name in sorted(connections - {LEDGER_CONNECTION})
        if os.environ.get(source_url_env_var(name))
    }


def definitions_from_env() -> dg.Definitions:
    """Build the definitions configured by the environment (see the module docstring)."""
    audiences_dir = os.environ.get("MOMENTS_AUDIENCES_DIR") or str(DEFAULT_AUDIENCES_DIR)
    warehouse_url = os.environ.get("MOMENTS_WAREHOUSE_URL") or DEFAULT_WAREHOUSE_URL
    # The URL may carry a password: when it comes from the environment, hand Dagster the
    # EnvVar rather than its value so the UI shows the variable's name only.
    timeout = os.environ.get("MOMENTS_SOURCE_TIMEOUT_S")
    warehouse = WarehouseResource(
        url=dg.EnvVar("MOMENTS_WAREHOUSE_URL")
        if os.environ.get("MOMENTS_WAREHOUSE_URL")
        else warehouse_url,
        sources=_sources_from_env(audiences_dir),
        source_timeout_s=float(timeout) if timeout else 300.0,
    )
    callback_port = os.environ.get("MOMENTS_CALLBACK_PORT")
    moments = MomentsResource(
        base_url=dg.EnvVar("INFOBIP_BASE_URL"),
        api_key=dg.EnvVar("INFOBIP_API_KEY"),
        callback_host=os.environ.get("MOMENTS_CALLBACK_HOST") or None,
        callback_port=int(callback_port) if callback_port else None,
        callback_public_url=os.environ.get("MOMENTS_CALLBACK_PUBLIC_URL") or None,
    )
    return build_definitions(audiences_dir, warehouse=warehouse, moments=moments)


defs = definitions_from_env()
