"""Dagster integration: resources, asset factories, checks and definitions.

The only subpackage that imports Dagster. Shaped like Dagster's own integration libraries:
resources that build plain clients (``MomentsResource``, ``WarehouseResource``), a pure
translator from an audience definition to asset and check specs (``build_audience_specs``),
a thin asset factory (``build_audience_assets``: assets plus check definitions that evaluate
what the assets recorded, never sending). ``moments_pipeline.dagster.definitions``
holds the project's ``defs`` for ``dagster dev -w workspace.yaml``.
"""

from moments_pipeline.dagster._component import MomentsAudiences
from moments_pipeline.dagster._factory import build_audience_assets
from moments_pipeline.dagster._metadata import mask_identifier, mask_participant
from moments_pipeline.dagster._resources import MomentsResource, WarehouseResource
from moments_pipeline.dagster._specs import (
    CHECK_NO_CONFLICT_SENT,
    CHECK_NO_QUARANTINE_LEAK,
    CHECK_NOTHING_PENDING,
    CHECK_REJECTION_RATE,
    METADATA_PREFIX,
    AudienceSpecs,
    AudienceTables,
    audience_asset_key,
    audience_tables,
    build_audience_specs,
)
from moments_pipeline.dagster._steps import SyncRunConfig

__all__ = [
    "CHECK_NOTHING_PENDING",
    "CHECK_NO_CONFLICT_SENT",
    "CHECK_NO_QUARANTINE_LEAK",
    "CHECK_REJECTION_RATE",
    "METADATA_PREFIX",
    "AudienceSpecs",
    "AudienceTables",
    "MomentsAudiences",
    "MomentsResource",
    "SyncRunConfig",
    "WarehouseResource",
    "audience_asset_key",
    "audience_tables",
    "build_audience_assets",
    "build_audience_specs",
    "mask_identifier",
    "mask_participant",
]
