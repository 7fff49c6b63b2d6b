"""Reading form sources: ``<audiences dir>/forms/*.yaml``, with the audience loader's errors.

A ``forms/`` subdirectory keeps form sources apart from audiences (the audience loader reads
only the files of its own directory, not subdirectories), and lets one ``MOMENTS_AUDIENCES_DIR``
carry both. A missing ``forms/`` directory is simply no form sources. Every bad file is
collected before anything is raised, as for audiences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from moments_pipeline.config._forms import FormSourceConfig
from moments_pipeline.config._loader import (
    ConfigError,
    ConfigErrors,
    audience_files,
    collect_named,
    load_model_file,
)

#: Subdirectory of the audiences directory holding the form sources.
FORMS_SUBDIR = "forms"


def forms_dir(audiences_dir: Path | str) -> Path:
    """Where the form sources of an audiences directory live (``<dir>/forms``)."""
    return Path(audiences_dir) / FORMS_SUBDIR


def load_form_source(path: Path | str) -> FormSourceConfig:
    """Read one form source YAML file.

    Raises:
        ConfigError: unreadable, not YAML, a repeated key, or not a valid form source.
    """
    return load_model_file(FormSourceConfig, path)


@dataclass
class FormSourceFiles:
    """Every form source read from a directory, good and bad (as ``AudienceFiles``)."""

    sources: dict[str, FormSourceConfig] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    errors: list[ConfigError] = field(default_factory=list)


def read_form_sources(path: Path | str) -> FormSourceFiles:
    """Read every form source of a directory (``*.yaml``/``*.yml``); none when it is missing.

    A second file using an already used name is an error of that file.
    """
    result = FormSourceFiles()
    path = Path(path)
    if not path.exists():
        return result
    collect_named(
        audience_files(path),
        load_form_source,
        "form source",
        result.sources,
        result.files,
        result.errors,
    )
    return result


def load_form_sources(path: Path | str) -> dict[str, FormSourceConfig]:
    """Every form source of a directory by name; raises ``ConfigErrors`` listing all problems."""
    result = read_form_sources(path)
    if result.errors:
        raise ConfigErrors(path, result.errors)
    return result.sources
