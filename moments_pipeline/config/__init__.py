"""Audience and form-source configuration: pydantic models and the YAML loader.

Errors name the file, the line and the field; a directory is read whole, so every bad file is
reported at once (``ConfigErrors``). No I/O beyond reading the YAML files it is given.
"""

from moments_pipeline.config._forms import FormSourceConfig, FormTarget
from moments_pipeline.config._forms_loader import (
    FORMS_SUBDIR,
    FormSourceFiles,
    forms_dir,
    load_form_source,
    load_form_sources,
    read_form_sources,
)
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
    PARTITION_COLUMN,
    PERSON_ATTRIBUTES,
    AudienceConfig,
    ConflictConfig,
    ConflictPolicy,
    FlowConfig,
    IdentifierType,
    IdentifyBy,
    IdentityConfig,
    Membership,
    PartitionConfig,
    PersonConfig,
    RemovalGuardConfig,
    ReportConfig,
    SensorConfig,
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
    "FORMS_SUBDIR",
    "LEDGER_CONNECTION",
    "PARTITION_COLUMN",
    "PERSON_ATTRIBUTES",
    "AudienceConfig",
    "AudienceFiles",
    "ConfigError",
    "ConfigErrors",
    "ConflictConfig",
    "ConflictPolicy",
    "FlowConfig",
    "FormSourceConfig",
    "FormSourceFiles",
    "FormTarget",
    "IdentifierType",
    "IdentifyBy",
    "IdentityConfig",
    "Membership",
    "PartitionConfig",
    "PersonConfig",
    "RemovalGuardConfig",
    "ReportConfig",
    "SensorConfig",
    "SourceConfig",
    "field_lines",
    "forms_dir",
    "load_audience",
    "load_audiences",
    "load_form_source",
    "load_form_sources",
    "parse_audience",
    "read_audiences",
    "read_form_sources",
    "source_url_env_var",
]
