"""``MomentsAudiences``: the Dagster component that declares a directory of audience YAML files.

Used from a project's defs folder, as Dagster 1.13 components are::

    # defs/audiences/defs.yaml
    type: moments_pipeline.dagster.MomentsAudiences
    attributes:
      audiences_dir: "{{ project_root }}/audiences"
    requirements:
      env: [INFOBIP_BASE_URL, INFOBIP_API_KEY, MOMENTS_WAREHOUSE_URL]
    post_processing:
      assets:
        - target: "*"
          attributes: {owners: ["team:crm"]}

The component reads the same files with the same loader and builds its definitions with the
same builder (``definitions.build_definitions``) as ``dagster dev -w workspace.yaml``, so both
give one asset graph, one set of checks, schedules and jobs. ``requirements`` and
``post_processing`` are Dagster's own keys of ``defs.yaml``: they apply to this component as to
any other. Secrets stay environment variables: the warehouse URL and the Infobip account reach
the resources as ``EnvVar`` (the attribute names the variable, it never holds a value), so the
UI shows variable names only.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from moments_pipeline.dagster.definitions import build_definitions, resources_from_env


class MomentsAudiences(dg.Component, dg.Model, dg.Resolvable):
    """Infobip Moments audiences: five assets and their checks per audience YAML file.

    Attributes:
        audiences_dir: Directory (or one file) of audience YAML definitions; a relative path
            is read from the folder of the ``defs.yaml`` that declares the component.
        warehouse_url_env: Environment variable holding the warehouse (and ledger) URL; unset,
            the demo's DuckDB file ``.demo/warehouse.duckdb``.
    """

    audiences_dir: str = Field(
        description="Directory of audience YAML files (relative: to this defs.yaml's folder)"
    )
    warehouse_url_env: str = Field(
        default="MOMENTS_WAREHOUSE_URL",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the environment variable holding the warehouse URL",
    )

    def resolved_audiences_dir(self, context: dg.ComponentLoadContext) -> Path:
        """The audiences directory, a relative one read from the component's own folder."""
        path = Path(self.audiences_dir)
        return path if path.is_absolute() else context.path / path

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The audiences' definitions, as ``definitions.build_definitions`` builds them."""
        audiences_dir = self.resolved_audiences_dir(context)
        warehouse, moments = resources_from_env(
            audiences_dir, warehouse_url_env=self.warehouse_url_env
        )
        return build_definitions(audiences_dir, warehouse=warehouse, moments=moments)
