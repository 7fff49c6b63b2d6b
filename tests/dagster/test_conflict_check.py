"""The "no conflicting identifier sent" check sees the whole ledger, not one audience.

Infobip merges profiles across audiences of one account, so an identifier recorded under two
profile anchors anywhere in the ledger must fail the check, whichever audience sent it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from moments_pipeline.config import parse_audience
from moments_pipeline.dagster import _report
from moments_pipeline.identity import mask_identifier
from moments_pipeline.sync import SqlLedgerStore
from moments_pipeline.warehouse import DuckDBWarehouse, PostgresWarehouse, Warehouse

AUDIENCE = parse_audience(
    {
        "name": "vip",
        "source": {"table": "crm.customers"},
        "identity": {"identify_by": {"column": "email", "type": "EMAIL"}},
        "flow": {"campaign_id": 1},
    },
    "audiences/vip.yaml",
)


def _ledger_with(
    tmp_path: Path,
    members: list[tuple[str, str, str, str, str]],
    warehouse: Warehouse | None = None,
) -> SqlLedgerStore:
    """A ledger whose sent batches hold ``(batch, audience, person_key, email, anchor)``."""
    ledger = SqlLedgerStore(warehouse or DuckDBWarehouse(tmp_path / "ledger.duckdb"))
    ledger.ensure_schema()
    tables, wh = ledger.table_names(), ledger.warehouse
    for batch, audience in sorted({(m[0], m[1]) for m in members}):
        wh.execute(
            f"INSERT INTO {tables['outbox']} (batch_id, audience, partition_key, campaign_id, "
            "attempt, size, state) VALUES (?, ?, '', 1, 0, 1, 'REPORTED')",
            [batch, audience],
        )
    for batch, _, key, email, anchor in members:
        wh.execute(
            f"INSERT INTO {tables['batch_members']} (batch_id, person_key, kind, identifier, "
            "is_identify_by, profile_anchor) VALUES (?, ?, 'EMAIL', ?, TRUE, ?)",
            [batch, key, email, anchor],
        )
    return ledger


def _conflicts(ledger: SqlLedgerStore) -> list[tuple[str, str]]:
    empty = pd.DataFrame({"person_key": [], "source_rows": []})
    evidence = _report.SentEvidence.collect(
        ledger, AUDIENCE, "", empty, pd.DataFrame({"row_id": []})
    )
    return evidence.conflicts()


def test_identifier_under_two_profiles_of_other_audiences_fails(tmp_path: Path) -> None:
    ledger = _ledger_with(
        tmp_path,
        [
            ("b1", "loyalty", "EXTERNAL_ID:C1", "ann@example.com", "EXTERNAL_ID:C1"),
            ("b2", "newsletter", "EMAIL:ann@example.com", "ann@example.com", "EXTERNAL_ID:C2"),
        ],
    )
    conflicts = _conflicts(ledger)
    assert [kind for kind, _ in conflicts] == ["EMAIL"]
    assert "ann@example.com" not in repr(conflicts)  # masked


def test_one_profile_reached_from_two_audiences_passes(tmp_path: Path) -> None:
    ledger = _ledger_with(
        tmp_path,
        [
            ("b1", "loyalty", "EXTERNAL_ID:C1", "ann@example.com", "EXTERNAL_ID:C1"),
            ("b2", "newsletter", "EMAIL:ann@example.com", "ann@example.com", "EXTERNAL_ID:C1"),
        ],
    )
    assert _conflicts(ledger) == []


@pytest.mark.parametrize("database", ["duckdb", "postgres"])
def test_two_spellings_of_one_email_are_one_identifier(
    tmp_path: Path, database: str, request: pytest.FixtureRequest
) -> None:
    # Infobip matches e-mails case-insensitively: the rules' comparable form, in SQL and Python.
    warehouse: Warehouse | None = None
    if database == "postgres":
        warehouse = PostgresWarehouse(request.getfixturevalue("postgres_dsn"))
        request.addfinalizer(warehouse.close)
    ledger = _ledger_with(
        tmp_path,
        [
            ("b1", "loyalty", "EXTERNAL_ID:C1", "Ann@Example.com", "EXTERNAL_ID:C1"),
            ("b2", "newsletter", "EMAIL:ann@example.com", "ann@example.com", "EXTERNAL_ID:C2"),
            ("b3", "vip", "EXTERNAL_ID:C3", "BO@example.com", "EXTERNAL_ID:C3"),
            ("b4", "vip", "EXTERNAL_ID:C4", "bo@Example.com", "EXTERNAL_ID:C4"),
        ],
        warehouse,
    )
    assert _conflicts(ledger) == [
        ("EMAIL", mask_identifier("ann@example.com")),
        ("EMAIL", mask_identifier("bo@example.com")),
    ]
