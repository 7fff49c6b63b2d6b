"""Audience and form-source configuration: pydantic models and the YAML loader.

Errors name the file and the field. No I/O beyond reading the YAML files it is given.
"""

from moments_pipeline.config._loader import (
    ConfigError,
    load_audience,
    load_audiences,
    parse_audience,
)
from moments_pipeline.config._models import (
    PERSON_ATTRIBUTES,
    AudienceConfig,
    ConflictConfig,
    ConflictPolicy,
    FlowConfig,
    IdentifierType,
    IdentifyBy,
    IdentityConfig,
    PersonConfig,
    ReportConfig,
    SourceConfig,
)

__all__ = [
    "PERSON_ATTRIBUTES",
    "AudienceConfig",
    "ConfigError",
    "ConflictConfig",
    "ConflictPolicy",
    "FlowConfig",
    "IdentifierType",
    "IdentifyBy",
    "IdentityConfig",
    "PersonConfig",
    "ReportConfig",
    "SourceConfig",
    "load_audience",
    "load_audiences",
    "parse_audience",
]
