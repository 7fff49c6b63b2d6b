"""Runs stop when nothing can succeed: a missing flow, a refused key, exhausted credits.

Each answer stops the run at once with a ``DestinationStoppedError`` naming the flow or the
account problem; the batches not sent stay PLANNED (claimable by the next run), never FAILED
with REJECTED_REQUEST_REFUSED rows, never HELD: a 401/403/404 proves nothing was processed.
A wrong key is noticed even when there is nothing to send (one cheap authenticated read).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from moments_pipeline.emulator import FaultSettings, FlowConfig
from moments_pipeline.emulator.flows import FlowState
from moments_pipeline.sync import (
    NOT_ENOUGH_CREDITS,
    AccountRefusedError,
    BatchState,
    CreditsExhaustedError,
    DestinationStoppedError,
    FlowUnavailableError,
    LedgerStore,
    SqlLedgerStore,
    SyncAuthError,
)
from moments_pipeline.warehouse import DuckDBWarehouse

from .memory_ledger import MemoryLedgerStore
from .support import AUDIENCE, CAMPAIGN, PARTITION, SyncEnv, people, sync_env

MakeApp = Callable[..., Starlette]
MISSING_FLOW = 200000000000999
ONE_AT_A_TIME: dict[str, Any] = {"batch_size": 5, "max_concurrent_sends": 1}
REPORT = "get-flow-participants-added-report"


@pytest.fixture(params=["memory", "duckdb"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerStore:
    if request.param == "memory":
        return MemoryLedgerStore()
    wh = DuckDBWarehouse(tmp_path / "ledger.duckdb")
    request.addfinalizer(wh.close)
    return SqlLedgerStore(wh)


async def _add_requests_logged(env: SyncEnv) -> list[dict[str, object]]:
    log = await env.inspect("/_emulator/requests")
    return [r for r in log if r["operation"] == "add-flow-participants"]


def _states(ledger: LedgerStore, campaign: int) -> set[BatchState]:
    return {b.state for b in ledger.batches(AUDIENCE, PARTITION, campaign)}


def _statuses(ledger: LedgerStore, campaign: int) -> set[str]:
    return {s.status for s in ledger.statuses(campaign)}


async def test_a_missing_flow_stops_at_the_first_404_and_a_later_run_sends_everyone(
    make_emulator_app: MakeApp, ledger: LedgerStore
) -> None:
    async with sync_env(make_emulator_app, ledger, notify=False) as env:
        with pytest.raises(FlowUnavailableError) as stopped:
            await env.run(people(20), campaign_id=MISSING_FLOW, **ONE_AT_A_TIME)
        error = stopped.value
        assert isinstance(error, DestinationStoppedError)
        assert str(MISSING_FLOW) in str(error) and "40401" in str(error)
        assert error.campaign_id == MISSING_FLOW and error.not_sent == 20
        assert len(await _add_requests_logged(env)) == 1, "stopped at the first answer"
        assert env.add_requests() == 0
        # Nothing is REJECTED (REQUEST_REFUSED), FAILED or HELD: everyone is still to send.
        assert _states(ledger, MISSING_FLOW) == {BatchState.PLANNED}
        assert _statuses(ledger, MISSING_FLOW) <= {"NOT_SENT"}

        # The flow is launched: the next run sends everyone, once.
        env.emulator.flows[MISSING_FLOW] = FlowState(FlowConfig(campaign_id=MISSING_FLOW))
        result = await env.run(people(20), campaign_id=MISSING_FLOW, **ONE_AT_A_TIME)
        assert result.delivered == 20 and env.add_requests() == 4
        assert _states(ledger, MISSING_FLOW) == {BatchState.REPORTED}


async def test_an_inactive_flow_is_unavailable_too(
    make_emulator_app: MakeApp, ledger: LedgerStore
) -> None:
    inactive = [FlowConfig(campaign_id=CAMPAIGN, active=False)]
    async with sync_env(make_emulator_app, ledger, notify=False, flows=inactive) as env:
        with pytest.raises(FlowUnavailableError, match=str(CAMPAIGN)):
            await env.run(people(7), **ONE_AT_A_TIME)
        assert _states(ledger, CAMPAIGN) == {BatchState.PLANNED}


async def test_a_refused_key_stops_the_run_naming_the_account_problem(
    make_emulator_app: MakeApp, ledger: LedgerStore
) -> None:
    async with sync_env(make_emulator_app, ledger, notify=False) as env:
        with pytest.raises(AccountRefusedError) as stopped:
            await env.run(people(12), api_key="bad-key-31c9", **ONE_AT_A_TIME)
        assert SyncAuthError is AccountRefusedError  # the former name still works
        message = str(stopped.value)
        assert "refused the API key" in message and "HTTP_401" in message
        assert "bad-key" not in message and "bad-key" not in repr(stopped.value)
        assert stopped.value.not_sent == 12
        assert _states(ledger, CAMPAIGN) == {BatchState.PLANNED}


@pytest.mark.parametrize("already_sent", [False, True], ids=["empty", "all-delivered"])
async def test_a_wrong_key_is_noticed_with_nothing_to_send(
    make_emulator_app: MakeApp, ledger: LedgerStore, already_sent: bool
) -> None:
    async with sync_env(make_emulator_app, ledger, notify=False) as env:
        audience = people(6) if already_sent else []
        if already_sent:
            assert (await env.run(audience)).delivered == 6
        with pytest.raises(AccountRefusedError, match="HTTP_401"):
            await env.run(audience, api_key="wrong-key-0000")
        # One cheap read, no add: the key check is the nonexistent report's GET.
        log = await env.inspect("/_emulator/requests")
        checks = [r for r in log if r["operation"] == REPORT]
        assert [r["status"] for r in checks][-1] == 401
        assert len(await _add_requests_logged(env)) == (1 if already_sent else 0)
        # With the right key the same nothing-to-do run is green, after one 404 check.
        result = await env.run(audience)
        assert result.batches_sent == 0
        log = await env.inspect("/_emulator/requests")
        assert (log[-1]["operation"], log[-1]["status"]) == (REPORT, 404)


async def test_exhausted_credits_stop_the_run_and_leave_the_rest_pending(
    make_emulator_app: MakeApp, ledger: LedgerStore
) -> None:
    slow = FaultSettings(latency_ms=20)  # reports come back while batches are still due
    async with sync_env(make_emulator_app, ledger, notify=False, credits=7, faults=slow) as env:
        with pytest.raises(CreditsExhaustedError) as stopped:
            await env.run(people(200), **ONE_AT_A_TIME)
        message = str(stopped.value)
        assert "out of credits" in message and NOT_ENOUGH_CREDITS in message
        assert str(CAMPAIGN) in message
        # The first batches are what the account could pay for; the batch that ran out was
        # processed (its verdicts are Infobip's), and the run stopped sending after it.
        statuses = ledger.statuses(CAMPAIGN)
        accepted = [s for s in statuses if s.status == "ACCEPTED"]
        assert len(accepted) == 7
        assert any(s.error_reason == NOT_ENOUGH_CREDITS for s in statuses)
        assert env.add_requests() < 40, "the run went on sending after credits ran out"
        states = _states(ledger, CAMPAIGN)
        assert BatchState.PLANNED in states and BatchState.HELD not in states
        assert BatchState.FAILED not in states
        assert stopped.value.not_sent > 0

        # Topped up: the next run sends those left and records the late verdicts of the
        # batches in flight at the stop (old news: no stop); the one after it re-sends those
        # refused for credits. Nobody is in the flow twice.
        env.emulator.credits_left = None
        await env.run(people(200), **ONE_AT_A_TIME)
        result = await env.run(people(200), **ONE_AT_A_TIME)
        assert result.delivered == 200
        assert set(env.add_requests_per_identifier().values()) <= {1, 2}
        assert len(await env.flow_members()) == 200
        assert await env.merges() == []
