"""A hostile input corpus goes through without a crash, a merge, or a lost row."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pandas as pd

from moments_pipeline.config import parse_audience
from moments_pipeline.warehouse import connect_warehouse
from tests.e2e.conftest import Rig

ROWS: list[dict[str, Any]] = [
    # id, customer, email, phone, country, first name
    {"rid": "r01", "cid": "A1", "email": "anna@example.com", "phone": "+41 79 302 67 27"},
    {"rid": "r02", "cid": "A1", "email": "  ANNA@Example.COM ", "phone": "079 302 67 27"},  # dup
    {"rid": "r03", "cid": None, "email": None, "phone": None},  # nothing at all
    {"rid": "r04", "cid": "B2", "email": "not-an-email", "phone": "12345"},
    {"rid": "r05", "cid": "C3", "email": "x" * 300 + "@example.com", "phone": "+1 415 555 0"},
    {"rid": "r06", "cid": "D4", "email": "zoë.ünïcode@example.org", "phone": "+385 91 234 5678"},
    {"rid": "r07", "cid": "E5", "email": "shared@example.net", "phone": "+49 151 23456789"},
    {
        "rid": "r08",
        "cid": "F6",
        "email": "shared@example.net",
        "phone": "+44 7400 123456",
    },  # conflict
    # A transitive chain: G-H share a phone, H-I share an email.
    {"rid": "r09", "cid": "G7", "email": "g@example.com", "phone": "+41 76 111 22 33"},
    {"rid": "r10", "cid": "H8", "email": "h@example.com", "phone": "+41 76 111 22 33"},
    {"rid": "r11", "cid": "I9", "email": "h@example.com", "phone": "+41 76 999 88 77"},
    {"rid": "r12", "cid": "J0" * 200, "email": "long-id@example.com", "phone": None},  # > 256
    {"rid": "r13", "cid": "K1", "email": "\t\n", "phone": "\u00a0"},  # whitespace only
    {"rid": "r14", "cid": "L2", "email": "robert'); DROP TABLE x;--@example.com", "phone": None},
    {"rid": "r15", "cid": "M3", "email": "ok.person@example.com", "phone": "n/a"},
]
NAMES = [
    "Zoë",
    "李",
    None,
    "O'Brien",
    "x" * 1000,
    "Ørjan",
    "Ana",
    "Ana",
    "G",
    "H",
    "I",
    "J",
    "",
    "Bobby",
    "Mia",
]


def _audience() -> Any:
    return parse_audience(
        {
            "name": "hostile",
            "source": {"table": "hostile_rows", "row_id_column": "rid"},
            "identity": {
                "identify_by": {"column": "email", "type": "EMAIL"},
                "external_id": "cid",
                "emails": ["email"],
                "phones": ["phone"],
                "default_region": "CH",
            },
            "person": {"attributes": {"firstName": "first_name"}},
            "flow": {"campaign_id": 200000000000001},
            "report": {"deadline_s": 20, "max_rejection_rate": 0.5},
        }
    )


def test_hostile_rows_end_in_participants_or_quarantine_without_merges(
    make_rig: Callable[[dict[str, Any]], Rig],
) -> None:
    frame = pd.DataFrame(ROWS)
    frame["first_name"] = NAMES
    rig = make_rig({"hostile_rows": frame})
    audience = _audience()

    result = rig.materialize([audience])
    assert result.success
    assert [c.check_name for c in result.get_asset_check_evaluations() if not c.passed] == []
    assert rig.inspect("merges") == []

    warehouse = connect_warehouse(rig.warehouse_url)
    try:
        quarantined = {r for (r,) in warehouse.fetch_all("SELECT row_id FROM hostile__quarantine")}
        sent_rows: set[str] = set()
        for (rows,) in warehouse.fetch_all("SELECT source_rows FROM hostile__participants"):
            sent_rows.update(json.loads(rows))
    finally:
        warehouse.close()
    all_rows = {r["rid"] for r in ROWS}
    assert quarantined | sent_rows == all_rows
    assert not quarantined & sent_rows
    # The conflicting pair and the transitive chain never reach the flow.
    assert {"r07", "r08", "r09", "r10", "r11"} <= quarantined
    assert {"r03", "r04", "r13"} <= quarantined
    # The duplicate collapsed into one person, who is in the flow once.
    assert {"r01", "r02"} <= sent_rows
    profiles = rig.inspect("flows/200000000000001/participants")
    assert len(profiles) == len({p["id"] for p in profiles}) >= 2
