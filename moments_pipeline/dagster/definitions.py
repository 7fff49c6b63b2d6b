"""The project's ``Definitions``: every audience YAML of a directory, wired to env-var resources.

Loaded by ``dagster dev -w workspace.yaml`` (module ``moments_pipeline.dagster.definitions``,
attribute ``defs``, built on first access so that importing this module loads nothing) and by
``scripts/demo.py``. ``build_definitions`` is the one builder: the ``MomentsAudiences``
component (``dg dev``) calls it too, with the resources of ``resources_from_env``.
Configuration comes from the environment only:

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
  by callback instead of being polled; unset, reports are polled;
- ``MOMENTS_PACING_URL``: a PostgreSQL URL holding the account's shared pacing record (runs on
  several hosts); unset, the record is a file per account on this host (``MOMENTS_PACING_DIR``,
  else ``$DAGSTER_HOME/moments_pacing``).
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
    forms_dir,
    load_audiences,
    read_audiences,
    read_form_sources,
    source_url_env_var,
)
from moments_pipeline.dagster import _catalog, _partitions, _sensors
from moments_pipeline.dagster._factory import build_audience_assets
from moments_pipeline.dagster._forms import build_form_definitions, form_schedules
from moments_pipeline.dagster._removals import plan_keys as membership_plan_keys
from moments_pipeline.dagster._resources import MomentsResource, WarehouseResource
from moments_pipeline.dagster._specs import build_audience_specs


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
    form_assets, form_schedule_defs = _form_assets(audiences_dir)
    assets.extend(form_assets)
    _check_source_connections(audiences_dir, audiences, warehouse)
    files = read_audiences(audiences_dir).files
    kinds = _catalog.warehouse_kinds(warehouse)
    schedules: list[dg.ScheduleDefinition] = []
    dry_run_keys: list[dg.AssetKey] = []
    for audience in audiences.values():
        file = files.get(audience.name)
        assets.extend(
            build_audience_assets(
                audience,
                source_file=file,
                source_line=field_lines(file).get("name") if file else None,
                warehouse_kinds=kinds,
            )
        )
        # Unpartitioned audiences only: a run of no partition cannot run a daily audience's
        # steps (dry-run one of its days from its own page, with the moments/dry_run tag).
        if audience.partition is None:
            dry_run_keys.extend(spec.key for spec in build_audience_specs(audience).assets)
            # A mirror audience's plan (and its guard) calls nothing; its removals are left out.
            dry_run_keys.extend(membership_plan_keys(build_audience_specs(audience)))
        schedule = _catalog.audience_schedule(audience, _partitions.partitions_def(audience))
        if schedule is not None:
            schedules.append(schedule)
    return dg.Definitions(
        assets=assets,
        resources={"warehouse": warehouse, "moments": moments},
        jobs=[
            dg.define_asset_job("sync_all_audiences", selection=dg.AssetSelection.all()),
            _catalog.dry_run_job(
                [
                    build_audience_specs(a).op_name("sync")
                    for a in audiences.values()
                    if a.partition is None
                ],
                dry_run_keys,
            ),
        ],
        schedules=[*schedules, *form_schedule_defs],
        # Opt-in per audience (``sensor:`` in its YAML): a run per partition whose rows changed.
        sensors=_sensors.build_sensors(audiences.values()),
        # One process per run: the account's 10 requests/s budget is per process (separate
        # step processes would each send at the full rate), an embedded DuckDB file admits one
        # writing process, and audiences of one account then sync one after the other.
        executor=dg.in_process_executor,
    )


def _form_assets(
    audiences_dir: Path | str,
) -> tuple[list[dg.AssetsDefinition], list[dg.ScheduleDefinition]]:
    # Form sources live in ``<audiences dir>/forms/`` (none when it is missing); a bad file
    # fails the load like a bad audience, naming file, line and field.
    if not Path(audiences_dir).is_dir():
        return [], []
    found = read_form_sources(forms_dir(audiences_dir))
    if found.errors:
        raise AudienceConfigError(forms_dir(audiences_dir), found.errors)
    assets, checks = build_form_definitions(found.sources.values())
    return [*assets, *checks], form_schedules(found.sources.values())


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


def resources_from_env(
    audiences_dir: Path | str, *, warehouse_url_env: str = "MOMENTS_WAREHOUSE_URL"
) -> tuple[WarehouseResource, MomentsResource]:
    """The warehouse and Moments resources configured by the environment (module docstring).

    Shared by ``definitions_from_env`` and the ``MomentsAudiences`` component, so that
    ``dagster dev -w workspace.yaml`` and ``dg dev`` bind the same resources.
    """
    warehouse_url = os.environ.get(warehouse_url_env) or DEFAULT_WAREHOUSE_URL
    # The URL may carry a password: when it comes from the environment, hand Dagster the
    # EnvVar rather than its value so the UI shows the variable's name only.
    timeout = os.environ.get("MOMENTS_SOURCE_TIMEOUT_S")
    warehouse = WarehouseResource(
        url=dg.EnvVar(warehouse_url_env) if os.environ.get(warehouse_url_env) else warehouse_url,
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
        # The account's shared pacing record on PostgreSQL (runs on several hosts); an EnvVar,
        # since the URL may carry a password. Unset: a file per account on this host.
        pacing_url=(
            dg.EnvVar("MOMENTS_PACING_URL") if os.environ.get("MOMENTS_PACING_URL") else None
        ),
    )
    return warehouse, moments


def definitions_from_env() -> dg.Definitions:
    """Build the definitions configured by the environment (see the module docstring)."""
    audiences_dir = os.environ.get("MOMENTS_AUDIENCES_DIR") or str(DEFAULT_AUDIENCES_DIR)
    warehouse, moments = resources_from_env(audiences_dir)
    return build_definitions(audiences_dir, warehouse=warehouse, moments=moments)


#: ``defs`` once built (in a dict: a second Definitions at module scope would confuse Dagster).
_BUILT: dict[str, dg.Definitions] = {}


def __getattr__(name: str) -> dg.Definitions:
    # ``defs`` is built on first access, not on import: the MomentsAudiences component imports
    # this module for its builder, and must not load the environment's audiences by doing so.
    # ``dagster dev -w workspace.yaml`` reads ``defs`` (a bad audience file fails it there).
    if name != "defs":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _BUILT:
        _BUILT[name] = definitions_from_env()
    return _BUILT[name]


def __dir__() -> list[str]:
    # Listed, so that `dagster ... -m moments_pipeline.dagster.definitions` finds ``defs`` too.
    return sorted([*globals(), "defs"])
