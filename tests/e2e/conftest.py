"""End-to-end fixtures: the sample data in a real warehouse and a served emulator.

The emulator runs in a thread on 127.0.0.1 with the real clock (the engine polls reports with
real time) and the demo's flow configuration; exchanges are recorded and validated against the
OpenAPI document by the contract fixture, since it is registered in ``emulator_registry``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
from pydantic import SecretStr

from moments_pipeline.config import AudienceConfig, load_audiences
from moments_pipeline.dagster import MomentsResource, WarehouseResource, build_audience_assets
from moments_pipeline.emulator.settings import load_settings
from moments_pipeline.emulator.testing import ServedEmulator
from moments_pipeline.warehouse import connect_warehouse

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from build_sample_warehouse import build_duckdb, sample_frames  # noqa: E402

API_KEY = "e2e-key-never-logged-77aa"
SAMPLE_AUDIENCES: dict[str, AudienceConfig] = load_audiences(REPO / "audiences")


@dataclass
class Rig:
    """A warehouse URL and a served emulator, with helpers to materialize and inspect."""

    warehouse_url: str
    emulator: ServedEmulator
    #: Serve a notifyUrl receiver (reports by callback) instead of polling reports.
    callbacks: bool = False

    @property
    def resources(self) -> dict[str, Any]:
        return {
            "warehouse": WarehouseResource(url=self.warehouse_url),
            "moments": MomentsResource(
                base_url=self.emulator.base_url,
                api_key=API_KEY,
                callback_host="127.0.0.1" if self.callbacks else None,
            ),
        }

    def materialize(self, audiences: Sequence[AudienceConfig]) -> dg.ExecuteInProcessResult:
        assets = [a for audience in audiences for a in build_audience_assets(audience)]
        return dg.materialize(assets, resources=self.resources, raise_on_error=False)

    def inspect(self, path: str) -> Any:
        response = httpx.get(f"{self.emulator.base_url}/_emulator/{path}", timeout=10)
        response.raise_for_status()
        return response.json()

    def add_requests(self) -> int:
        return sum(1 for r in self.inspect("requests") if r["operation"] == "add-flow-participants")


@pytest.fixture
def served_sample_emulator(emulator_registry: list[Any]) -> Iterator[ServedEmulator]:
    settings = load_settings(REPO / "data_samples" / "emulator.yaml").model_copy(
        update={
            "api_keys": [SecretStr(API_KEY)],
            "rate_limit_per_s": None,  # the demo keeps 10/s; tests need not wait for it
            "processing_delay_s": 0.05,
            "record_exchanges": True,
        }
    )
    with ServedEmulator(settings, api_key=API_KEY) as served:
        emulator_registry.append(served.emulator)
        yield served


def load_samples(url: str) -> None:
    """Write the sample tables into any warehouse URL (the PostgreSQL path of the tests)."""
    warehouse = connect_warehouse(url)
    try:
        for table, frame in sample_frames().items():
            warehouse.write_frame(table, frame, mode="replace")
    finally:
        warehouse.close()


@pytest.fixture(params=["duckdb", "postgres"])
def sample_rig(
    request: pytest.FixtureRequest, tmp_path: Path, served_sample_emulator: ServedEmulator
) -> Rig:
    """The sample data in DuckDB or PostgreSQL, and the served emulator.

    The DuckDB rig receives reports through a notifyUrl receiver, the PostgreSQL rig polls
    them, so both ways of getting verdicts run end to end.
    """
    if request.param == "duckdb":
        path = tmp_path / "warehouse.duckdb"
        build_duckdb(path)
        url = f"duckdb:///{path}"
    else:
        url = request.getfixturevalue("postgres_dsn")
        load_samples(url)
    return Rig(url, served_sample_emulator, callbacks=request.param == "duckdb")


@pytest.fixture
def make_rig(
    tmp_path: Path, served_sample_emulator: ServedEmulator
) -> Callable[[dict[str, Any]], Rig]:
    """``make_rig({table: frame})``: a DuckDB warehouse holding the given frames."""

    def make(tables: dict[str, Any]) -> Rig:
        url = f"duckdb:///{tmp_path / 'custom.duckdb'}"
        warehouse = connect_warehouse(url)
        try:
            for table, frame in tables.items():
                warehouse.write_frame(table, frame, mode="replace")
        finally:
            warehouse.close()
        return Rig(url, served_sample_emulator)

    return make
