"""Removals on the SQL ledger (DuckDB and PostgreSQL) against the in-process emulator.

A crash between a DELETE and its record, the repeat that the contract allows, the one
identifier a DELETE carries, and the guard's arithmetic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from moments_pipeline.config import RemovalGuardConfig
from moments_pipeline.emulator.settings import EmulatorSettings
from moments_pipeline.emulator.testing import EmulatorTransport, ServedEmulator
from moments_pipeline.infobip import MomentsClient, MomentsClientConfig
from moments_pipeline.sync import (
    BatchMember,
    BatchRecord,
    BatchState,
    IllegalTransition,
    LedgerStore,
    MomentsRemover,
    PlanSummary,
    RemovalsStoppedError,
    RemovalState,
    SqlLedgerStore,
    StatusRow,
    apply_removals,
    check_removal_transition,
    evaluate_guard,
    plan_membership,
)
from moments_pipeline.warehouse import DuckDBWarehouse, PostgresWarehouse, Warehouse
from tests.sync.memory_ledger import MemoryLedgerStore

FLOW = 200000000000001


@pytest.fixture(params=["duckdb", "postgres", "memory"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LedgerStore]:
    """The SQL ledger on both warehouses, and the in-memory one: the protocol is the door."""
    if request.param == "memory":
        yield MemoryLedgerStore()
        return
    if request.param == "duckdb":
        wh: Warehouse = DuckDBWarehouse(tmp_path / "ledger.duckdb")
    else:
        wh = PostgresWarehouse(request.getfixturevalue("postgres_dsn"))
    try:
        store = SqlLedgerStore(wh)
        store.ensure_schema()
        yield store
    finally:
        wh.close()


KEY = "test-key"


class Crash(BaseException):
    """The process dies right after the DELETE left (nothing after it runs)."""


class CrashAfterDelete:
    def __init__(self, inner: MomentsRemover) -> None:
        self.inner = inner

    async def remove(self, campaign_id: int, kind: str, identifier: str) -> Any:
        await self.inner.remove(campaign_id, kind, identifier)
        raise Crash


def _client(app: Starlette) -> MomentsClient:
    config = MomentsClientConfig(
        base_url="http://emulator.test",
        api_key=SecretStr(KEY),
        allow_insecure_http=True,
        backoff_initial_s=0.01,
    )
    return MomentsClient(config, transport=EmulatorTransport(app), rate_budget=None)


async def _put_in_flow(app: Starlette, emails: list[str]) -> None:
    async with httpx.AsyncClient(
        transport=EmulatorTransport(app),
        base_url="http://emulator.test",
        headers={"Authorization": f"App {KEY}"},
    ) as http:
        body = {
            "participants": [
                {"identifyBy": {"identifier": e, "type": "EMAIL"}, "person": {}} for e in emails
            ]
        }
        response = await http.post(f"/moments/1/flows/{FLOW}/participants", json=body)
        assert response.status_code == 200, response.text


def _record_added(ledger: LedgerStore, audience: str, emails: list[str]) -> None:
    """What a sync of ``audience`` leaves in the ledger after these people were ACCEPTED."""
    batch = BatchRecord(f"b-{audience}", audience, "", FLOW, 0, len(emails), BatchState.PLANNED)
    members = [BatchMember(batch.batch_id, f"EMAIL:{e}", "EMAIL", e, True) for e in emails]
    ledger.plan_batches([batch], members)
    ledger.upsert_statuses(
        [
            StatusRow(
                FLOW, f"EMAIL:{e}", audience, "", batch.batch_id, "op", "ACCEPTED", None, True
            )
            for e in emails
        ]
    )


def _in_flow(app: Starlette) -> set[str]:
    emulator = app.state.emulator
    emulator.catch_up()
    flow = emulator.flows[FLOW]
    return {
        email for pid in flow.members for email in emulator.people.profiles[pid].to_dict()["emails"]
    }


def _plan(ledger: LedgerStore, plan_id: str, keep: list[str]) -> Any:
    plan = plan_membership(
        ledger,
        plan_id=plan_id,
        audience="mirror",
        partition_key="",
        campaign_id=FLOW,
        person_keys=[f"EMAIL:{e}" for e in keep],
        source_rows=len(keep),
        quarantined=0,
    )
    ledger.record_plan(plan.summary, plan.people, plan.removals)
    return plan


async def test_a_crash_between_a_delete_and_its_record_is_repeated_safely(
    ledger: LedgerStore, make_emulator_app: Any, emulator_clock: Any
) -> None:
    app = make_emulator_app(processing_delay_s=0)
    emails = ["a@example.com", "b@example.com"]
    await _put_in_flow(app, emails)
    assert _in_flow(app) == set(emails)
    _record_added(ledger, "mirror", emails)

    plan = _plan(ledger, "run-1", ["b@example.com"])
    assert [(r.kind, r.identifier) for r in plan.removals] == [("EMAIL", "a@example.com")]
    async with _client(app) as client:
        with pytest.raises(Crash):
            await apply_removals(CrashAfterDelete(MomentsRemover(client)), ledger, plan.removals)
    assert _in_flow(app) == {"b@example.com"}  # the DELETE landed, its answer was never recorded
    (open_one,) = ledger.removals("mirror", "", FLOW)
    assert open_one.state is RemovalState.REMOVING

    # The next run plans again: the REMOVING one is carried over and repeated, not held.
    replan = _plan(ledger, "run-2", ["b@example.com"])
    assert [r.state for r in replan.removals] == [RemovalState.REMOVING]
    async with _client(app) as client:
        result = await apply_removals(MomentsRemover(client), ledger, replan.removals)
    assert (result.removed, result.gone) == (0, 1)
    assert result.reasons == {"ValidationError:HTTP_400:40006": 1}
    (done,) = ledger.removals("mirror", "", FLOW)
    assert (done.state, done.attempts) == (RemovalState.GONE, 2)
    (status,) = ledger.statuses(FLOW, ["EMAIL:a@example.com"])
    assert (status.status, status.delivered) == ("REMOVED", False)
    assert "EMAIL:a@example.com" not in ledger.delivered_person_keys(FLOW)
    deletes = [e for e in app.state.emulator.request_log if e["method"] == "DELETE"]
    assert [e["status"] for e in deletes] == [200, 400]
    # Nothing is left to do: a third plan removes nobody.
    assert _plan(ledger, "run-3", ["b@example.com"]).removals == ()


async def test_only_this_audiences_people_are_planned(ledger: LedgerStore) -> None:
    _record_added(ledger, "mirror", ["m1@example.com", "m2@example.com"])
    _record_added(ledger, "other", ["o1@example.com"])
    plan = _plan(ledger, "run-1", [])
    assert sorted(r.identifier for r in plan.removals) == ["m1@example.com", "m2@example.com"]
    assert plan.summary.in_flow == 2


async def test_a_newer_plan_discards_the_unissued_removals_of_an_older_one(
    ledger: LedgerStore,
) -> None:
    _record_added(ledger, "mirror", ["m1@example.com", "m2@example.com"])
    _plan(ledger, "run-1", ["m2@example.com"])
    _plan(ledger, "run-2", ["m1@example.com", "m2@example.com"])  # m1 is back
    states = {r.plan_id: r.state for r in ledger.removals("mirror", "", FLOW)}
    assert states == {"run-1": RemovalState.DISCARDED}
    summary = ledger.latest_plan("mirror", "")
    assert summary is not None and (summary.plan_id, summary.removals) == ("run-2", 0)


def test_removal_transitions_are_the_table_only(ledger: LedgerStore) -> None:
    check_removal_transition(RemovalState.PLANNED, RemovalState.REMOVING)
    with pytest.raises(IllegalTransition):
        check_removal_transition(RemovalState.REMOVED, RemovalState.REMOVING)
    _record_added(ledger, "mirror", ["m1@example.com"])
    (r,) = _plan(ledger, "run-1", []).removals
    assert not ledger.move_removal(r.removal_id, RemovalState.REMOVED)  # never issued
    assert ledger.move_removal(r.removal_id, RemovalState.REMOVING)
    assert ledger.move_removal(r.removal_id, RemovalState.REMOVED)
    assert not ledger.move_removal(r.removal_id, RemovalState.REMOVING)


def test_ensure_schema_is_idempotent_for_an_existing_ledger(ledger: LedgerStore) -> None:
    _record_added(ledger, "mirror", ["m1@example.com"])
    _plan(ledger, "run-1", [])
    ledger.ensure_schema()
    assert len(ledger.removals("mirror", "", FLOW)) == 1


def _summary(**counts: int) -> PlanSummary:
    values = {"source_rows": 10, "in_flow": 10, "removals": 1} | counts
    return PlanSummary(
        "p", "a", "", FLOW, values["source_rows"], 0, 0, values["in_flow"], 0, 0,
        values["removals"], 0, 0.0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("counts", "limits", "passed"),
    [
        ({"removals": 1}, {}, True),
        ({"removals": 2}, {}, False),  # 20 % > 10 %
        ({"source_rows": 0, "removals": 10}, {"max_removal_share": 1.0}, False),
        ({"source_rows": 0, "in_flow": 0, "removals": 0}, {}, True),  # nothing to remove
        ({"removals": 5}, {"max_removal_share": 1.0, "max_removals": 4}, False),
        ({"removals": 4}, {"max_removal_share": 1.0, "max_removals": 4}, True),
    ],
)
def test_guard(counts: dict[str, int], limits: dict[str, Any], passed: bool) -> None:
    verdict = evaluate_guard(_summary(**counts), RemovalGuardConfig(**limits))
    assert verdict.passed is passed
    assert bool(verdict.refusals) is not passed
    forced = evaluate_guard(
        _summary(**counts), RemovalGuardConfig(**limits), allow_mass_removal=True
    )
    assert forced.passed and forced.overridden is (not passed)


async def test_removals_share_the_rate_budget_with_adds(
    ledger: LedgerStore, tmp_path: Path
) -> None:
    """DELETEs and add requests of two clients of one account, at once: never a 429."""
    settings = EmulatorSettings(
        api_keys=[SecretStr(KEY)], rate_limit_per_s=10, processing_delay_s=0.0
    )
    with ServedEmulator(settings, api_key=KEY) as served:
        config = MomentsClientConfig(
            base_url=served.base_url, api_key=SecretStr(KEY), allow_insecure_http=True
        )
        emails = [f"gone{i}@example.com" for i in range(25)]
        async with MomentsClient(config) as adder:
            await adder.add_flow_participants(
                FLOW, [{"identifyBy": {"identifier": e, "type": "EMAIL"}} for e in emails]
            )
        served.emulator.catch_up()
        _record_added(ledger, "mirror", emails)
        plan = _plan(ledger, "run-1", [])
        assert len(plan.removals) == 25

        async def adds(client: MomentsClient) -> None:
            for i in range(15):
                body = {"identifyBy": {"identifier": f"new{i}@example.com", "type": "EMAIL"}}
                await client.add_flow_participants(FLOW, [body])

        async with MomentsClient(config) as client, MomentsClient(config) as other:
            assert client.rate_budget is other.rate_budget  # one budget per account
            result, _ = await asyncio.gather(
                apply_removals(MomentsRemover(client), ledger, plan.removals, concurrency=8),
                adds(other),
            )
        log = list(served.emulator.request_log)
    assert result.removed == 25
    assert len(log) == 1 + 25 + 15
    assert [e for e in log if e["status"] == 429] == []


async def test_faults_answers_and_a_missing_flow(
    ledger: LedgerStore, make_emulator_app: Any
) -> None:
    """500 and 429 are retried, a DELETE processed then dropped ends GONE, a missing flow stops."""
    from moments_pipeline.emulator.faults import QueuedFault

    app = make_emulator_app(processing_delay_s=0)
    emails = ["f1@example.com", "f2@example.com", "f3@example.com", "f4@example.com"]
    await _put_in_flow(app, emails)
    _record_added(ledger, "mirror", emails)
    plan = _plan(ledger, "run-1", [])
    faults = app.state.emulator.faults
    op = "remove-people-from-flow"
    for kind in ("500", "drop_after", "429"):
        faults.enqueue(QueuedFault(kind=kind, operation=op, count=1))
    async with _client(app) as client:
        result = await apply_removals(MomentsRemover(client), ledger, plan.removals, concurrency=1)
    assert (result.removed, result.gone, result.unconfirmed) == (3, 1, 0)
    assert result.reasons == {"ASSUMED_REMOVED_AFTER_RETRY": 1}
    assert _in_flow(app) == set()
    states = sorted(r.state.value for r in ledger.removals("mirror", "", FLOW))
    assert states == ["GONE", "REMOVED", "REMOVED", "REMOVED"]

    missing = 200000000000404
    batch = BatchRecord("b-lost", "lost", "", missing, 0, 2, BatchState.PLANNED)
    keys = ["EMAIL:l1@example.com", "EMAIL:l2@example.com"]
    ledger.plan_batches([batch], [BatchMember("b-lost", k, "EMAIL", k[6:], True) for k in keys])
    ledger.upsert_statuses(
        [StatusRow(missing, k, "lost", "", "b-lost", "op", "ACCEPTED", None, True) for k in keys]
    )
    lost = plan_membership(
        ledger,
        plan_id="run-x",
        audience="lost",
        partition_key="",
        campaign_id=missing,
        person_keys=[],
        source_rows=1,
        quarantined=0,
    )
    ledger.record_plan(lost.summary, lost.people, lost.removals)
    async with _client(app) as client:
        with pytest.raises(RemovalsStoppedError, match="40401"):
            await apply_removals(MomentsRemover(client), ledger, lost.removals, concurrency=1)
    left = [r.state for r in ledger.removals("lost", "", missing)]
    assert left == [RemovalState.PLANNED, RemovalState.PLANNED]  # nothing processed: to do
