"""The project's ``Definitions``: every audience YAML of a directory, wired to env-var resources.

Loaded by ``dagster dev -w workspace.yaml`` (module ``moments_pipeline.dagster.definitions``,
attribute ``defs``) and by ``scripts/demo.py``. Configuration comes from the environment only:

- ``MOMENTS_AUDIENCES_DIR``: directory of audience YAML files (default ``audiences/`` at the
  repository root);
- ``MOMENTS_WAREHOUSE_URL``: warehouse URL (default the sample DuckDB file
  ``.demo/warehouse.duckdb`` at the repository root);
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

from moments_pipeline.config import load_audiences
from moments_pipeline.dagster._factory import build_audience_assets
from moments_pipeline.dagster._resources import MomentsResource, WarehouseResource

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_AUDIENCES_DIR = REPO_ROOT / "audiences"
DEFAULT_WAREHOUSE_URL = f"duckdb:///{REPO_ROOT / '.demo' / 'warehouse.duckdb'}"


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
        moments_pipeline.config.ConfigError: An audience file is invalid (names file and field).
    """
    assets: list[dg.AssetsDefinition] = []
    for audience in load_audiences(audiences_dir).values():
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


def definitions_from_env() -> dg.Definitions:
    """Build the definitions configured by the environment (see the module docstring)."""
    audiences_dir = os.environ.get("MOMENTS_AUDIENCES_DIR") or str(DEFAULT_AUDIENCES_DIR)
    warehouse_url = os.environ.get("MOMENTS_WAREHOUSE_URL") or DEFAULT_WAREHOUSE_URL
    # The URL may carry a password: when it comes from the environment, hand Dagster the
    # EnvVar rather than its value so the UI shows the variable's name only.
    warehouse = WarehouseResource(
        url=dg.EnvVar("MOMENTS_WAREHOUSE_URL")
        if os.environ.get("MOMENTS_WAREHOUSE_URL")
        else warehouse_url
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
