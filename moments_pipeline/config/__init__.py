"""Audience and form-source configuration: pydantic models and the YAML loader.

Errors name the file, the line and the field; a directory is read whole, so every bad file is
reported at once (``ConfigErrors``). No I/O beyond reading the YAML files it is given.
"""

from moments_pipeline.config._loader import (
    AudienceFiles,
    ConfigError,
    ConfigErrors,
    field_lines,
    load_audience,
    load_audiences,
    parse_audience,
    read_audiences,
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
from moments_pipeline.config._project import (
    DEFAULT_AUDIENCES_DIR,
    DEFAULT_WAREHOUSE_URL,
    DEMO_WAREHOUSE,
    LEDGER_CONNECTION,
    source_url_env_var,
)

__all__ = [
    "DEFAULT_AUDIENCES_DIR",
    "DEFAULT_WAREHOUSE_URL",
    "DEMO_WAREHOUSE",
    "LEDGER_CONNECTION",
    "PERSON_ATTRIBUTES",
    "AudienceConfig",
    "AudienceFiles",
    "ConfigError",
    "ConfigErrors",
    "ConflictConfig",
    "ConflictPolicy",
    "FlowConfig",
    "IdentifierType",
    "IdentifyBy",
    "IdentityConfig",
    "PersonConfig",
    "ReportConfig",
    "SourceConfig",
    "field_lines",
    "load_audience",
    "load_audiences",
    "parse_audience",
    "read_audiences",
    "source_url_env_var",
]
