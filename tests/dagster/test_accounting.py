"""Row accounting, the dropped-values record, and tables that keep any text as text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from moments_pipeline.config import parse_audience
from moments_pipeline.dagster import _accounting, _asset_metadata, _tables
from moments_pipeline.dagster._specs import CHECK_ROWS_ACCOUNTED, build_audience_specs
from moments_pipeline.identity import prepare_audience
from moments_pipeline.warehouse import DuckDBWarehouse, Warehouse, connect_warehouse

AUDIENCE = parse_audience(
    {
        "name": "acc",
        "source": {"table": "crm.people", "row_id_column": "rid"},
        "identity": {
            "identify_by": {"column": "email", "type": "EMAIL"},
            "phones": ["phone"],
            "default_region": "US",
        },
        "flow": {"campaign_id": 1},
    },
    "audiences/acc.yaml",
)
SPECS = build_audience_specs(AUDIENCE)
HOSTILE = [
    "[not json",
    '["looks", "like", "json"]',
    "{brace}",
    "a\x00b",
    "bell\x07 tab\t nl\n",
    "z" * 10_000,
    "Zoë 李 عربى 😀",
    "",
]


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    else:
        url = request.getfixturevalue("postgres_dsn")
    wh = connect_warehouse(url)
    try:
        yield wh
    finally:
        wh.close()


def _recorded(rows_in: int, sent: list[list[str]], quarantined: list[tuple[str, str]]):
    return _accounting.RecordedRows(rows_in, sent, quarantined, {})


def test_the_check_passes_when_every_row_is_accounted_for() -> None:
    recorded = _recorded(4, [["a", "b"], ["c"]], [("#3", "ROW_ID_MISSING")])
    result = _accounting.accounting_check(SPECS, recorded)
    assert result.passed and result.check_name == CHECK_ROWS_ACCOUNTED
    assert result.asset_key == SPECS.participants.key


@pytest.mark.parametrize(
    ("recorded", "problem"),
    [
        (_recorded(5, [["a", "b"], ["c"]], [("d", "INVALID_IDENTIFY_BY")]), "5 source rows"),
        (_recorded(3, [["a", "b"]], [("a", "INVALID_IDENTIFY_BY")]), "both sent and quarantined"),
        (_recorded(3, [["a"], ["a"]], [("c", "INVALID_IDENTIFY_BY")]), "in two participants"),
        (_recorded(2, [], [("c", "IDENTITY_CONFLICT")] * 2), "quarantined twice"),
    ],
)
def test_the_check_fails_on_an_inconsistent_record(
    recorded: _accounting.RecordedRows, problem: str
) -> None:
    result = _accounting.accounting_check(SPECS, recorded)
    assert not result.passed
    assert problem in str(result.metadata["problems"].value)


def test_rows_sharing_a_duplicated_id_are_recorded_under_distinct_ids() -> None:
    recorded = _recorded(3, [["a"]], [("d", "ROW_ID_DUPLICATE"), ("d#2", "ROW_ID_DUPLICATE")])
    assert _accounting.accounting_check(SPECS, recorded).passed
    same = _recorded(3, [["a"]], [("d", "ROW_ID_DUPLICATE"), ("d", "ROW_ID_DUPLICATE")])
    assert not _accounting.accounting_check(SPECS, same).passed


def test_accounting_metadata_counts_every_dropped_reason() -> None:
    recorded = _accounting.RecordedRows(2, [["a"]], [("b", "X")], {"PHONE_HAS_LETTERS": 3})
    meta = _accounting.accounting_metadata(recorded, "acc__dropped_values")
    assert meta["moments/rows_in"] == 2
    assert meta["moments/rows_in_participants"] == 1
    assert meta["moments/rows_quarantined"] == 1
    assert meta["moments/dropped"] == 3
    assert meta["moments/dropped/PHONE_HAS_LETTERS"] == 3
    assert meta["moments/dropped/INVALID_PHONE"] == 0


def test_list_columns_are_declared_and_text_stays_text(warehouse: Warehouse) -> None:
    frame = pd.DataFrame(
        {
            "row_id": [f"r{i}" for i in range(len(HOSTILE))],
            "raw": HOSTILE,
            "source_rows": [[t] for t in HOSTILE],
        }
    )
    _tables.write_table(warehouse, "t_hostile", frame, json_columns=["source_rows"])
    back = _tables.read_table(warehouse, "t_hostile", json_columns=["source_rows"])
    back = back.sort_values("row_id", key=lambda s: s.str[1:].astype(int))
    # NUL cannot live in PostgreSQL TEXT: stored as U+FFFD, on every backend alike.
    expected = [t.replace("\x00", "\ufffd") for t in HOSTILE]
    got = [None if pd.isna(v) else v for v in back["raw"].tolist()]
    assert got == expected
    assert back["source_rows"].tolist() == [[t] for t in HOSTILE]  # JSON escapes NUL itself


def test_prepared_tables_round_trip_and_reconcile(warehouse: Warehouse) -> None:
    # A PostgreSQL source cannot hold NUL; a DuckDB one can.
    nul = "\x00" if isinstance(warehouse, DuckDBWarehouse) else "\ufffd"
    source = pd.DataFrame(
        {
            "rid": ["a", "b", None, "d", "d", "f", "g"],
            "email": ["a@x.com", "[b", "c@x.com", "d@x.com", "e@x.com", "f@x.com", f"a{nul}@x"],
            "phone": ["001 212 555 0143", "1-800-FLOWERS", None, None, None, "n/a", "x" * 10_000],
        }
    )
    warehouse.write_frame(SPECS.tables.source_snapshot, source, mode="replace")
    prepared = prepare_audience(source, AUDIENCE)
    _tables.write_table(
        warehouse,
        SPECS.tables.participants,
        prepared.participants,
        json_columns=_tables.PARTICIPANTS_JSON_COLUMNS,
    )
    for table, data in (
        (SPECS.tables.quarantine, prepared.quarantine),
        (SPECS.tables.dropped_values, prepared.dropped_values),
    ):
        _tables.write_table(warehouse, table, data, json_columns=())
    recorded = _accounting.RecordedRows.collect(warehouse, SPECS)
    assert _accounting.accounting_check(SPECS, recorded).passed
    assert recorded.rows_in == 7
    quarantine = _tables.read_table(warehouse, SPECS.tables.quarantine, json_columns=())
    by_row = dict(zip(quarantine["row_id"], quarantine["email"], strict=True))
    assert by_row["b"] == "[b"  # text, not a list
    assert by_row["g"] == "a\ufffd@x"
    assert set(quarantine["reason"]) == {
        "INVALID_IDENTIFY_BY",
        "ROW_ID_MISSING",
        "ROW_ID_DUPLICATE",
    }
    assert recorded.dropped_by_reason == {"PHONE_HAS_LETTERS": 2, "VALUE_TOO_LONG": 1}
    dropped = warehouse.read_table(SPECS.tables.dropped_values)
    assert set(dropped.columns) == {"row_id", "column_name", "value_masked", "reason", "detail"}
    assert "FLOWERS" not in " ".join(dropped["value_masked"])
    # The metadata of hostile quarantine rows renders.
    meta = _asset_metadata.quarantine_metadata(quarantine)
    assert "\x00" not in str(meta["moments/quarantine_sample"].value)
