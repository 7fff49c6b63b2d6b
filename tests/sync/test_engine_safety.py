"""The engine's last lines of defence: the identity re-check under the lease, the quarantine
record always replaced, and a refused API key stopping the run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from starlette.applications import Starlette

from moments_pipeline.config import AudienceConfig, parse_audience
from moments_pipeline.emulator import FlowConfig
from moments_pipeline.identity import prepare_audience
from moments_pipeline.sync import (
    BatchState,
    LedgerStore,
    QuarantineRow,
    SqlLedgerStore,
    SyncAuthError,
    participants_from_prepared,
    prior_identities_frame,
    quarantine_from_prepared,
)
from moments_pipeline.warehouse import DuckDBWarehouse, PostgresWarehouse, Warehouse

from .memory_ledger import MemoryLedgerStore
from .support import AUDIENCE, CAMPAIGN, PARTITION, people, sync_env

MakeApp = Callable[..., Starlette]
FLOW_A, FLOW_B = 200000000000101, 200000000000102


@pytest.fixture(params=["memory", "duckdb", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerStore:
    """The in-memory ledger and the SQL one on both warehouses."""
    if request.param == "memory":
        return MemoryLedgerStore()
    wh: Warehouse
    if request.param == "duckdb":
        wh = DuckDBWarehouse(tmp_path / "ledger.duckdb")
    else:
        wh = PostgresWarehouse(request.getfixturevalue("postgres_dsn"))
    request.addfinalizer(wh.close)
    return SqlLedgerStore(wh)


def _audience(name: str, campaign_id: int) -> AudienceConfig:
    return parse_audience(
        {
            "name": name,
            "source": {"table": f"people_{name}", "row_id_column": "rid"},
            "identity": {
                "identify_by": {"column": "email", "type": "EMAIL"},
                "external_id": "cid",
                "emails": ["email"],
                "phones": ["phone"],
                "default_region": "US",
            },
            "flow": {"campaign_id": campaign_id},
        }
    )


def _rows(*rows: tuple[str, str, str, str | None]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["rid", "cid", "email", "phone"])


P1, P2, P9 = "+12025550101", "+12025550103", "+12025550109"


async def test_audiences_prepared_together_cannot_merge_profiles(
    make_emulator_app: MakeApp, ledger: LedgerStore
) -> None:
    """The reviewer's cross-audience case: both prepared against an empty ledger, then synced
    one after the other. B's c2 carries A's c1 email and A's c3 phone; c5 carries c3's email
    under another externalId; c1 comes back with a new email (updates its own profile)."""
    a_spec, b_spec = _audience("a", FLOW_A), _audience("b", FLOW_B)
    ledger.ensure_schema()
    empty = prior_identities_frame(ledger)
    a = prepare_audience(
        _rows(("a1", "c1", "x@ex.com", P1), ("a3", "c3", "z@ex.com", P2)),
        a_spec,
        prior_identities=empty,
    )
    b = prepare_audience(
        _rows(
            ("b1", "c2", "x@ex.com", P2),
            ("b5", "c5", "z@ex.com", None),
            ("b6", "c6", "w@ex.com", P9),
            ("b7", "c1", "y@ex.com", P1),
        ),
        b_spec,
        prior_identities=empty,
    )
    assert len(b.participants) == 4  # preparation saw no conflict: the ledger was empty
    flows = [FlowConfig(campaign_id=FLOW_A), FlowConfig(campaign_id=FLOW_B)]
    async with sync_env(make_emulator_app, ledger, flows=flows) as env:
        done_a = await env.run(
            participants_from_prepared(a, a_spec), audience="a", campaign_id=FLOW_A
        )
        assert done_a.delivered == 2
        done_b = await env.run(
            participants_from_prepared(b, b_spec),
            audience="b",
            campaign_id=FLOW_B,
            quarantine=quarantine_from_prepared(b, audience="b", partition_key=PARTITION),
        )
        assert done_b.quarantined_by_reason == {
            "WOULD_MERGE_PRIOR_PROFILES": 1,
            "IDENTIFIER_SENT_FOR_OTHER_PERSON": 1,
        }
        assert done_b.delivered == 2 and done_b.status_counts == {"ACCEPTED": 2}
        refused = {r.reason: r for r in done_b.refused_participants}
        assert set(refused) == {"WOULD_MERGE_PRIOR_PROFILES", "IDENTIFIER_SENT_FOR_OTHER_PERSON"}
        for sample in refused.values():
            for raw in ("x@ex.com", "z@ex.com", "12025550103", "c1", "c3"):
                assert raw not in sample.detail and raw not in sample.person_key_hint
        # The record names the input rows, with the reasons.
        assert {(q.row_id, q.reason) for q in ledger.quarantine("b", PARTITION)} == {
            ("b1", "WOULD_MERGE_PRIOR_PROFILES"),
            ("b5", "IDENTIFIER_SENT_FOR_OTHER_PERSON"),
        }
        # Nobody refused was sent; c1's new email is recorded under A's profile of c1.
        in_b = await env.inspect(f"/_emulator/flows/{FLOW_B}/participants")
        assert sorted(m["externalIds"][0] for m in in_b) == ["c1", "c6"]
        c1 = next(m for m in in_b if m["externalIds"] == ["c1"])
        assert sorted(c1["emails"]) == ["x@ex.com", "y@ex.com"]  # A's profile, updated
        assert await env.merges() == []
        profiles: list[dict[str, Any]] = await env.inspect("/_emulator/people")
        assert all(len(p["externalIds"]) <= 1 for p in profiles)
        assert sorted(p["externalIds"][0] for p in profiles) == ["c1", "c3", "c6"]
        anchors = {(k, i): a for k, i, a in ledger.sent_identities()}
        assert anchors[("EMAIL", "y@ex.com")] == anchors[("EMAIL", "x@ex.com")]


async def test_quarantine_record_is_replaced_even_when_a_run_has_none(
    make_emulator_app: MakeApp, ledger: LedgerStore
) -> None:
    old = [QuarantineRow(AUDIENCE, PARTITION, "r1", "INVALID_EMAIL", None)]
    other = [QuarantineRow("other", PARTITION, "r9", "INVALID_PHONE", None)]
    async with sync_env(make_emulator_app, ledger) as env:
        ledger.record_quarantine(other)
        first = await env.run(people(3), quarantine=old)
        assert first.quarantined_by_reason == {"INVALID_EMAIL": 1}
        assert ledger.quarantine(AUDIENCE, PARTITION) == old
        second = await env.run(people(3), quarantine=[])
        assert second.quarantined_by_reason == {}
        assert ledger.quarantine(AUDIENCE, PARTITION) == []  # the stale record is gone
        assert ledger.quarantine("other", PARTITION) == other  # other scopes untouched


async def test_a_refused_api_key_stops_the_run_without_retrying_or_leaking(
    make_emulator_app: MakeApp, ledger: LedgerStore
) -> None:
    async with sync_env(make_emulator_app, ledger, notify=False) as env:
        with pytest.raises(SyncAuthError) as stopped:
            await env.run(
                people(30), api_key="wrong-key-4f9a1c", batch_size=10, max_concurrent_sends=1
            )
        message = str(stopped.value)
        assert "wrong-key-4f9a1c" not in message and "wrong-key" not in repr(stopped.value)
        assert "HTTP_40" in message and stopped.value.not_sent == 30
        assert env.add_requests() == 0  # refused before anything was queued
        adds = [r for r in await env.inspect("/_emulator/requests") if "participants" in r["path"]]
        assert len(adds) == 1, "an auth failure must not be retried"
        batches = ledger.batches(AUDIENCE, PARTITION, CAMPAIGN)
        assert batches and {b.state for b in batches} == {BatchState.PLANNED}
        # With the right key, a later run sends everyone once.
        result = await env.run(people(30), batch_size=10)
        assert result.delivered == 30 and env.add_requests() == 3
        assert len(await env.flow_members()) == 30
