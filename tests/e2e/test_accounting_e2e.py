"""Issue 8 through the real assets, on DuckDB and PostgreSQL: every row and identifier accounted.

The source tables are created with SQL column types (DECIMAL(38,0) / NUMERIC, DOUBLE), so the
ids reach preparation exactly as each warehouse class hands them over.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from moments_pipeline.config import AudienceConfig, parse_audience
from moments_pipeline.warehouse import connect_warehouse
from tests.e2e.conftest import Rig

COLUMNS = ("rid", "cid", "fid", "email", "phone", "country", "first_name")
# rid, cid (exact decimal), fid (float), email, phone, country, first name
ROWS: list[tuple[Any, ...]] = [
    ("r01", 10**20, 1e20, "p01@example.com", None, "CH", "A"),
    ("r02", 2**63, float(2**63), "p02@example.com", None, "CH", "B"),
    ("r03", 2**53 + 1, float(2**53 + 1), "p03@example.com", None, "CH", "C"),
    ("r04", 0, -0.0, "p04@example.com", None, "CH", "D"),
    ("r05", None, float("nan"), "p05@example.com", None, "CH", "E"),
    ("r06", 6, float("inf"), "p06@example.com", None, "CH", "F"),
    ("r07", 41, 41.0, "p07@example.com", "001 212 555 0143", "US", "G"),
    ("r08", 8, 8.0, "p08@example.com", "1-800-FLOWERS", "US", "H"),
    (None, 9, 9.0, "p09@example.com", None, "CH", "I"),
    ("dup", 10, 10.0, "p10@example.com", None, "CH", "J"),
    ("dup", 11, 11.0, "p11@example.com", None, "CH", "K"),
    ("r12", 12, 12.0, "[p12@example.com", "[+41", "CH", "[not json"),
    ("r13", 13, 13.0, "z" * 10_000, None, "CH", "{brace}"),
    ("r14", 14, 14.0, "p14@example.com", "0049 30 901820", "US", "Zoë 李 ع"),
    ("r15", 15, 15.0, "p15\x07@example.com", "+41 79 302 67 27 x12", "CH", "bell\x07"),
]
NUL_ROW = ("r16", 16, 16.0, "p16\x00@example.com", "+41 79 302 67 28\x00", "CH", "nul\x00")
TYPES = {
    "duckdb": "rid VARCHAR, cid DECIMAL(38,0), fid DOUBLE, email VARCHAR, phone VARCHAR, "
    "country VARCHAR, first_name VARCHAR",
    "postgres": "rid TEXT, cid NUMERIC(38,0), fid DOUBLE PRECISION, email TEXT, phone TEXT, "
    "country TEXT, first_name TEXT",
}


def _audience(name: str, external_id: str, campaign: int, table: str) -> AudienceConfig:
    return parse_audience(
        {
            "name": name,
            "source": {"table": table, "row_id_column": "rid"},
            "identity": {
                "identify_by": {"column": "email", "type": "EMAIL"},
                "external_id": external_id,
                "emails": ["email"],
                "phones": ["phone"],
                "region_column": "country",
            },
            "person": {"attributes": {"firstName": "first_name"}},
            "flow": {"campaign_id": campaign},
            "report": {"deadline_s": 20, "max_rejection_rate": 0.5},
        }
    )


@pytest.fixture(params=["duckdb", "postgres"])
def typed_rig(request: pytest.FixtureRequest, tmp_path: Path, served_sample_emulator: Any) -> Rig:
    """Tables ``exact_ids`` and ``float_ids`` (the rows, e-mails marked ``.e@``/``.f@``: no
    person in both) and ``no_rows`` (empty), typed by SQL, in DuckDB or PostgreSQL."""
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path / 'typed.duckdb'}"
    else:
        url = request.getfixturevalue("postgres_dsn")
    warehouse = connect_warehouse(url)
    try:
        placeholders = ", ".join("?" for _ in COLUMNS)
        for table, prefix in (("exact_ids", "e"), ("float_ids", "f"), ("no_rows", None)):
            warehouse.execute(f"CREATE TABLE {table} ({TYPES[request.param]})")
            if prefix is None:
                continue
            # PostgreSQL TEXT cannot hold NUL; a DuckDB source can, and it must get through.
            nul = [NUL_ROW] if request.param == "duckdb" else []
            rows = [(*r[:3], r[3].replace("@", f".{prefix}@"), *r[4:]) for r in ROWS + nul]
            warehouse.execute_many(f"INSERT INTO {table} VALUES ({placeholders})", rows)
    finally:
        warehouse.close()
    return Rig(url, served_sample_emulator)


def _meta(result: dg.ExecuteInProcessResult, name: str, step: str) -> dict[str, Any]:
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey([name, step])
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _checks(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], bool]:
    return {
        (c.asset_key.path[0], c.check_name): c.passed for c in result.get_asset_check_evaluations()
    }


def test_an_empty_source_is_a_green_run_that_sends_nothing(typed_rig: Rig) -> None:
    audience = _audience("empty_source", "cid", 200000000000001, "no_rows")
    result = typed_rig.materialize([audience])
    assert result.success
    checks = _checks(result)
    assert len(checks) == 5 and all(checks.values())
    meta = _meta(result, "empty_source", "participants")
    assert meta["moments/rows_in"] == meta["moments/rows_in_participants"] == 0
    assert meta["moments/rows_quarantined"] == meta["moments/dropped"] == 0
    assert _meta(result, "empty_source", "quarantine")["moments/quarantined"] == 0
    assert _meta(result, "empty_source", "flow_sync")["moments/sent_requests"] == 0
    assert _meta(result, "empty_source", "flow_report")["moments/accepted"] == 0
    assert typed_rig.add_requests() == 0


def test_every_row_and_identifier_is_accounted_for(typed_rig: Rig) -> None:
    exact = _audience("exact_ids", "cid", 200000000000002, "exact_ids")
    floats = _audience("float_ids", "fid", 200000000000003, "float_ids")
    result = typed_rig.materialize([exact, floats])
    assert result.success
    checks = _checks(result)
    assert len(checks) == 10
    assert [k for k, passed in checks.items() if not passed] == []
    assert checks[("exact_ids", "every_row_accounted_for")]
    assert typed_rig.inspect("merges") == []

    warehouse = connect_warehouse(typed_rig.warehouse_url)
    try:
        for audience in (exact, floats):
            name = audience.name
            meta = _meta(result, name, "participants")
            rows_in = _meta(result, name, "source")["moments/rows"]
            assert rows_in >= len(ROWS)
            assert meta["moments/rows_in"] == rows_in
            assert (
                meta["moments/rows_in_participants"] + meta["moments/rows_quarantined"] == rows_in
            )
            reasons = dict(
                warehouse.fetch_all(
                    f"SELECT row_id, reason FROM {name}__quarantine WHERE "
                    "reason LIKE 'ROW_ID%' ORDER BY row_id"
                )
            )
            # The missing id is its position; both rows sharing "dup" are held back.
            assert reasons["#8"] == "ROW_ID_MISSING"
            dup = warehouse.fetch_all(
                f"SELECT row_id FROM {name}__quarantine WHERE reason = 'ROW_ID_DUPLICATE'"
            )
            assert sorted(r for (r,) in dup) == ["dup", "dup#10"]
            # The ledger's quarantine record joins on the same row ids.
            ledger_ids = sorted(
                r
                for (r,) in warehouse.fetch_all(
                    "SELECT row_id FROM moments_sync_quarantine WHERE audience = ?", [name]
                )
            )
            prepared_ids = sorted(
                r for (r,) in warehouse.fetch_all(f"SELECT row_id FROM {name}__quarantine")
            )
            assert ledger_ids == prepared_ids
            # Text starting with "[" stays text in the quarantine table.
            (email,) = warehouse.fetch_all(
                f"SELECT email FROM {name}__quarantine WHERE row_id = 'r12'"
            )[0]
            assert email.startswith("[")
            if typed_rig.warehouse_url.startswith("duckdb"):
                # NUL is stored as U+FFFD (PostgreSQL TEXT could not hold it).
                (email,) = warehouse.fetch_all(
                    f"SELECT email FROM {name}__quarantine WHERE row_id = 'r16'"
                )[0]
                assert email == f"p16\ufffd.{audience.source.table[0]}@example.com"
            # Dropped values: recorded masked, counted by reason.
            dropped = {
                (r, c, why)
                for r, c, why in warehouse.fetch_all(
                    f"SELECT row_id, column_name, reason FROM {name}__dropped"
                )
            }
            assert ("r08", "phone", "PHONE_HAS_LETTERS") in dropped
            assert ("r15", "phone", "PHONE_HAS_EXTENSION") in dropped
            values = [
                v for (v,) in warehouse.fetch_all(f"SELECT value_masked FROM {name}__dropped")
            ]
            assert not any("FLOWERS" in v for v in values)
            assert meta["moments/dropped"] == len(dropped)
            assert meta["moments/dropped/PHONE_HAS_LETTERS"] >= 1
            # ``00`` as the international prefix.
            phones = {
                p
                for (ps,) in warehouse.fetch_all(f"SELECT phones FROM {name}__participants")
                for p in json.loads(ps)
            }
            assert {"12125550143", "4930901820"} <= phones

        ext = {e for (e,) in warehouse.fetch_all("SELECT external_id FROM exact_ids__participants")}
        assert {"100000000000000000000", "9223372036854775808", "9007199254740993", "0"} <= ext
        float_ext = {
            e for (e,) in warehouse.fetch_all("SELECT external_id FROM float_ids__participants")
        }
        assert "0" in float_ext and "41" in float_ext
        assert not any(e and len(e) > 16 for e in float_ext)  # never a folded big float
        held = dict(
            warehouse.fetch_all(
                "SELECT row_id, detail FROM float_ids__quarantine "
                "WHERE reason = 'INVALID_EXTERNAL_ID'"
            )
        )
        assert set(held) == {"r01", "r02", "r03", "r06"}
        assert "2**53" in held["r01"] and "finite" in held["r06"]
    finally:
        warehouse.close()


def test_typed_ids_read_back_through_the_warehouse_classes_stay_exact(typed_rig: Rig) -> None:
    from moments_pipeline.identity import prepare_audience

    warehouse = connect_warehouse(typed_rig.warehouse_url)
    try:
        exact = warehouse.read_table("exact_ids")
        floats = warehouse.read_table("float_ids")
    finally:
        warehouse.close()
    # DECIMAL(38,0) / NUMERIC arrive as exact Decimals, DOUBLE as floats.
    assert str(exact["cid"].iloc[1]) == str(2**63)
    prepared = prepare_audience(exact, _audience("exact_ids", "cid", 1, "exact_ids"))
    ids = dict(
        zip(
            [rows[0] for rows in prepared.participants["source_rows"]],
            prepared.participants["external_id"],
            strict=True,
        )
    )
    assert ids["r01"] == "100000000000000000000"
    assert ids["r02"] == "9223372036854775808"
    assert ids["r03"] == "9007199254740993"
    assert ids["r04"] == "0"
    prepared = prepare_audience(floats, _audience("float_ids", "fid", 1, "float_ids"))
    held = dict(zip(prepared.quarantine["row_id"], prepared.quarantine["reason"], strict=True))
    assert {r: held[r] for r in ("r01", "r02", "r03", "r06")} == dict.fromkeys(
        ("r01", "r02", "r03", "r06"), "INVALID_EXTERNAL_ID"
    )
    keys = set(prepared.participants["person_key"])
    assert {"EXTERNAL_ID:0", "EXTERNAL_ID:41", "EMAIL:p05.f@example.com"} <= keys


def test_a_numeric_nan_id_is_quarantined_on_postgres(postgres_dsn: str) -> None:
    from moments_pipeline.identity import prepare_audience

    warehouse = connect_warehouse(postgres_dsn)
    try:
        warehouse.execute(f"CREATE TABLE nan_ids ({TYPES['postgres']})")
        warehouse.execute(
            "INSERT INTO nan_ids VALUES ('n1', 'NaN'::numeric, 'NaN'::float8, 'n1@example.com', "
            "NULL, 'CH', 'N'), ('n2', NULL, NULL, 'n2@example.com', NULL, 'CH', 'M')"
        )
        frame = warehouse.read_table("nan_ids")
    finally:
        warehouse.close()
    prepared = prepare_audience(frame, _audience("nan_ids", "cid", 1, "nan_ids"))
    assert prepared.quarantine[["row_id", "reason", "detail"]].values.tolist() == [
        ["n1", "INVALID_EXTERNAL_ID", "cid: not a finite number"]
    ]
    assert prepared.participants["person_key"].tolist() == ["EMAIL:n2@example.com"]
