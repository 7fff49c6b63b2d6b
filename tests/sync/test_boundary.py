"""The engine's boundary: it knows only its protocols, never a warehouse or HTTP library."""

from __future__ import annotations

import ast
from pathlib import Path

import moments_pipeline.sync as sync_pkg
from moments_pipeline.infobip import MomentsClient
from moments_pipeline.sync import (
    FlowDestination,
    LedgerStore,
    MomentsFlowDestination,
    SqlLedgerStore,
)
from moments_pipeline.warehouse import DuckDBWarehouse

from .memory_ledger import MemoryLedgerStore
from .support import client_config

SYNC_DIR = Path(sync_pkg.__file__).parent
# Modules of the engine proper; the adapters (_destination, _ledger_sql, _prepared) are the
# only ones allowed to know the client, the warehouse and the identity layer.
ENGINE_MODULES = [
    "_engine.py",
    "_protocols.py",
    "_batching.py",
    "_reports.py",
    "_result.py",
    "_clock.py",
    "_errors.py",
    "_identity_check.py",
    "_lease.py",
    "_options.py",
    "_run_parts.py",
    "_callbacks.py",
    "_send.py",
    "_states.py",
    "_record.py",
]
FORBIDDEN = (
    "httpx",
    "duckdb",
    "psycopg",
    "moments_pipeline.warehouse",
    "moments_pipeline.infobip",
    "moments_pipeline.emulator",
)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_engine_modules_import_neither_warehouses_nor_http() -> None:
    offenders = {
        name: sorted(m for m in _imports(SYNC_DIR / name) if m.startswith(FORBIDDEN))
        for name in ENGINE_MODULES
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import httpx\nfrom moments_pipeline.warehouse import DuckDBWarehouse\n")
    assert {"httpx", "moments_pipeline.warehouse"} <= _imports(probe)


async def test_implementations_satisfy_the_protocols() -> None:
    assert isinstance(MemoryLedgerStore(), LedgerStore)
    warehouse = DuckDBWarehouse(":memory:")
    try:
        assert isinstance(SqlLedgerStore(warehouse), LedgerStore)
    finally:
        warehouse.close()
    async with MomentsClient(client_config()) as client:
        destination = MomentsFlowDestination(
            client, notify_url="http://127.0.0.1:1/cb/secret-token"
        )
        assert isinstance(destination, FlowDestination)
        assert "secret-token" not in repr(destination)
