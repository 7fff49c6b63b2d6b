"""moments_pipeline: put warehouse audiences into Infobip Moments flows, safely and exactly once.

Subpackages, each with one role:

- ``config``: pydantic models and the YAML loader for audiences and form sources.
- ``warehouse``: the reader/writer protocol and its DuckDB and PostgreSQL implementations.
- ``identity``: pure pandas normalization, dedupe and conflict detection.
- ``infobip``: the async Moments API client (no Dagster import).
- ``sync``: the sync engine, batching and ledger (no Dagster import, no logging).
- ``dagster``: resources, assets, checks and definitions; the only place that knows Dagster.
- ``emulator``: a local Moments API for tests and demos; product code never imports it.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
