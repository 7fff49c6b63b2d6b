"""The project's defs folder (``[tool.dg.project] defs_module``): read by ``dg`` and Dagster.

Holds only ``defs.yaml`` files declaring components (``audiences/defs.yaml``:
``MomentsAudiences`` over the repository's ``audiences/``); no definitions are written in Python
here. Loaded through ``moments_pipeline.dagster.project``.
"""
