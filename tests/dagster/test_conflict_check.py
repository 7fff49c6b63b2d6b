"""The "no conflicting identifier sent" check sees the whole ledger, not one audience.

Infobip merges profiles across audiences of one account, so an identifier recorded under two
profile anchors anywhere in the ledger must fail the check, whichever audience sent it, and
whatever ``LedgerStore`` holds the ledger: the check asks the protocol
(``identifier_conflicts``), so a store other than the SQL one cannot silently pass it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from moments_pipeline.config import parse_audience
from moments_pipeline.dagster import _checks, build_audience_specs
from moments_pipeline.identity import mask_identifier
from moments_pipeline.sync import BatchMember, BatchRecord, BatchState, LedgerStore, SqlLedgerStore
from moments_pipeline.warehouse import DuckDBWarehouse, PostgresWarehouse, Warehouse
from tests.sync.memory_ledger import MemoryLedgerStore

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


def _memory_ledger_with(members: list[tuple[str, str, str, str, str]]) -> MemoryLedgerStore:
    """The same ledger as ``_ledger_with``, in the in-memory store (no SQL anywhere)."""
    ledger = MemoryLedgerStore()
    batches = sorted({(m[0], m[1]) for m in members})
    ledger.plan_batches(
        [BatchRecord(b, a, "", 1, 0, 1, BatchState.REPORTED) for b, a in batches],
        [BatchMember(b, key, "EMAIL", email, True, anchor) for b, _, key, email, anchor in members],
    )
    return ledger


def _conflicts(ledger: LedgerStore) -> list[tuple[str, str]]:
    empty = pd.DataFrame({"person_key": [], "source_rows": []})
    evidence = _checks.SentEvidence.collect(
        ledger, build_audience_specs(AUDIENCE), empty, pd.DataFrame({"row_id": []})
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


def test_a_ledger_store_that_is_not_sql_does_not_silently_pass() -> None:
    # Before the protocol had ``identifier_conflicts``, the account-wide view was read with raw
    # SQL behind ``isinstance(SqlLedgerStore)``: any other store passed with no conflict seen.
    members = [
        ("b1", "loyalty", "EXTERNAL_ID:C1", "Ann@Example.com", "EXTERNAL_ID:C1"),
        ("b2", "newsletter", "EMAIL:ann@example.com", "ann@example.com", "EXTERNAL_ID:C2"),
        ("b3", "loyalty", "EXTERNAL_ID:C3", "cy@example.com", "EXTERNAL_ID:C3"),
    ]
    ledger = _memory_ledger_with(members)
    assert not isinstance(ledger, SqlLedgerStore)
    assert ledger.identifier_conflicts(10) == [("EMAIL", "ann@example.com")]
    assert _conflicts(ledger) == [("EMAIL", mask_identifier("ann@example.com"))]


def test_the_memory_and_sql_ledgers_agree_on_conflicts(tmp_path: Path) -> None:
    members = [
        ("b1", "loyalty", "EXTERNAL_ID:C1", "Ann@Example.com", "EXTERNAL_ID:C1"),
        ("b2", "newsletter", "EMAIL:ann@example.com", "ann@example.com", "EXTERNAL_ID:C2"),
        ("b3", "vip", "EXTERNAL_ID:C3", "bo@example.com", "EXTERNAL_ID:C3"),
        ("b4", "vip", "EXTERNAL_ID:C4", "bo@example.com", "EXTERNAL_ID:C4"),
        ("b5", "vip", "EXTERNAL_ID:C5", "cy@example.com", "EXTERNAL_ID:C5"),
    ]
    sql = _ledger_with(tmp_path, members)
    memory = _memory_ledger_with(members)
    assert sql.identifier_conflicts(10) == memory.identifier_conflicts(10)
    assert (
        sql.identifier_conflicts(1)
        == memory.identifier_conflicts(1)
        == [sql.identifier_conflicts(10)[0]]
    )
