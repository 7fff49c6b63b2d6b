"""The generated bad-input corpus through the real assets, on DuckDB and PostgreSQL.

Asserts what an operator relies on, whatever the input: the run does not crash; Infobip merges
nobody; every input row ends in exactly one participant or in quarantine (with the reason the
corpus expects); every dropped identifier is recorded with its row, column, reason and a masked
value; and the persisted tables reconcile with the row count of the source.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from moments_pipeline.config import parse_audience
from moments_pipeline.emulator.testing import ServedEmulator
from moments_pipeline.warehouse import connect_warehouse
from tests.e2e.bad_input_corpus import AUDIENCE, EITHER, QUARANTINED, SENT, build_corpus
from tests.e2e.conftest import Rig


@pytest.fixture(params=["duckdb", "postgres"])
def corpus_rig(
    request: pytest.FixtureRequest, tmp_path: Path, served_sample_emulator: ServedEmulator
) -> tuple[Rig, Any]:
    corpus = build_corpus(seed=7)
    frame = pd.DataFrame(corpus.rows).astype(object)
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path / 'corpus.duckdb'}"
    else:
        url = request.getfixturevalue("postgres_dsn")
    warehouse = connect_warehouse(url)
    try:
        # Every column as text, as a careless export gives it (NUL cannot be stored in a
        # PostgreSQL TEXT column, so the source itself cannot hold it there).
        if request.param == "postgres":
            frame = frame.map(lambda v: v.replace("\x00", "") if isinstance(v, str) else v)
        warehouse.write_frame("corpus_rows", frame, mode="replace")
    finally:
        warehouse.close()
    return Rig(url, served_sample_emulator, callbacks=request.param == "duckdb"), corpus


def _fetch(url: str, sql: str) -> list[tuple[Any, ...]]:
    warehouse = connect_warehouse(url)
    try:
        return warehouse.fetch_all(sql)
    finally:
        warehouse.close()


def test_corpus_runs_without_crash_merge_or_loss(corpus_rig: tuple[Rig, Any]) -> None:
    rig, corpus = corpus_rig
    audience = parse_audience(AUDIENCE)

    result = rig.materialize([audience])

    assert result.success, [
        e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"
    ]
    failed = [c.check_name for c in result.get_asset_check_evaluations() if not c.passed]
    assert failed == []
    assert rig.inspect("merges") == []

    quarantine = _fetch(rig.warehouse_url, "SELECT row_id, reason, detail FROM corpus__quarantine")
    participants = _fetch(rig.warehouse_url, "SELECT source_rows FROM corpus__participants")
    sent_rows: Counter[str] = Counter()
    for (rows,) in participants:
        sent_rows.update(json.loads(rows) if isinstance(rows, str) else rows)

    # Every input row once: in one participant, or in quarantine; never both, never twice.
    assert sum(sent_rows.values()) + len(quarantine) == len(corpus.rows)
    assert all(n == 1 for n in sent_rows.values())
    reasons = {str(r): str(reason) for r, reason, _ in quarantine}
    assert len(reasons) == len(quarantine), "quarantine row ids must be unique"
    assert not set(reasons) & set(sent_rows)
    assert all(detail for *_, detail in quarantine), "every quarantine reason carries a detail"
    missing = [r for r, reason in reasons.items() if reason == "ROW_ID_MISSING"]
    assert len(missing) == corpus.missing_row_ids

    wrong = {}
    for rid, (fate, reason) in corpus.expected.items():
        if fate == SENT and rid not in sent_rows:
            wrong[rid] = f"expected SENT, got {reasons.get(rid)}"
        elif fate == QUARANTINED:
            got = reasons.get(rid)
            if got is None or (reason is not None and got != reason):
                wrong[rid] = f"expected {reason or QUARANTINED}, got {got or 'SENT'}"
        elif fate == EITHER:
            assert rid in sent_rows or rid in reasons
    assert wrong == {}

    dropped = _fetch(
        rig.warehouse_url, "SELECT row_id, column_name, value_masked, reason FROM corpus__dropped"
    )
    recorded = {(str(r), str(c)) for r, c, _, _ in dropped}
    assert corpus.dropped <= recorded
    raw = {(str(row["rid"]), c): row[c] for row in corpus.rows for c in row if row["rid"]}
    for rid, column, masked, reason in dropped:
        assert reason, (rid, column)
        value = raw.get((str(rid), str(column)))
        if value and len(str(value).strip()) > 4:
            assert masked != str(value).strip(), "dropped values are stored masked"

    # Numbers written with the 00 international prefix reach the flow in E.164 digits.
    flow = rig.inspect("flows/200000000000001/participants")
    phones_in_flow = {str(p) for person in flow for p in person.get("phones", [])}
    for rid, digits in corpus.phones_sent.items():
        assert digits in phones_in_flow, (rid, digits)
