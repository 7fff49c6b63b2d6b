"""The code location of the ``dg`` project (``[tool.dg.project] code_location_target_module``).

``dg dev``, ``dg check defs`` and ``dg list defs`` load ``defs`` from here: every component of
the defs folder (``moments_pipeline/dagster/defs``), found from the repository's
``pyproject.toml``. ``dagster dev -w workspace.yaml`` loads ``definitions.defs`` instead; both
build through ``definitions.build_definitions``.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    """Every component declared in the project's defs folder."""
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
