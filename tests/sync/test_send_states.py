"""Send states that say what could have reached Infobip: claims, marks on the wire, answers.

In process, against the emulator, on the in-memory ledger and the SQL one (DuckDB): a 429 or
a refused connection is "not processed" (back to CLAIMED, then sent, never held); a batch left
CLAIMED by a dead run is sent by the next one; an operator's re-send is recorded as such, and
a refusal says why in words.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.applications import Starlette

from moments_pipeline.sync import BatchState, LedgerStore, SqlLedgerStore
from moments_pipeline.sync._batching import members_of
from moments_pipeline.warehouse import DuckDBWarehouse

from .memory_ledger import MemoryLedgerStore
from .support import AUDIENCE, CAMPAIGN, PARTITION, people, sync_env

MakeApp = Callable[..., Starlette]


@pytest.fixture(params=["memory", "duckdb"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerStore:
    if request.param == "memory":
        return MemoryLedgerStore()
    wh = DuckDBWarehouse(tmp_path / "ledger.duckdb")
    request.addfinalizer(wh.close)
    return SqlLedgerStore(wh)


def _states(ledger: LedgerStore) -> dict[str, BatchState]:
    return {b.batch_id: b.state for b in ledger.batches(AUDIENCE, PARTITION, CAMPAIGN)}


async def test_a_429_goes_back_to_the_claim_and_is_sent_not_held(
    make_emulator_app: MakeApp, ledger: LedgerStore
) -> None:
    async with sync_env(make_emulator_app, ledger, notify=False) as env:
        env.queue_fault("429", count=2)
        result = await env.run(people(200))
        assert result.held_batches == [] and result.status_counts == {"ACCEPTED": 200}
        assert env.add_requests() == 2  # the 429s processed nothing
        assert set(_states(ledger).values()) == {BatchState.REPORTED}
        assert max(env.add_requests_per_identifier().values()) == 1


async def test_a_batch_a_dead_run_left_claimed_is_sent_by_the_next_run(
    make_emulator_app: MakeApp, ledger: LedgerStore
) -> None:
    async with sync_env(make_emulator_app, ledger, notify=False) as env:
        await env.run(people(100))
        # A dead run's claim: its batch of the next 100 people never went on the wire.
        (done,) = ledger.batches(AUDIENCE, PARTITION, CAMPAIGN)
        claimed = dataclasses.replace(
            done, batch_id="dead-claim", state=BatchState.PLANNED, operation_id=None
        )
        ledger.plan_batches([claimed], members_of("dead-claim", people(100, start=100)))
        assert ledger.claim_batch("dead-claim", "dead-run")
        result = await env.run(people(200))
        assert result.held_batches == []
        assert result.status_counts == {"ACCEPTED": 100} and result.already_delivered == 100
        assert "dead-claim" not in _states(ledger)  # released and planned again
        assert len(await env.flow_members()) == 200


async def test_an_operators_resend_within_the_run_is_recorded_as_resent(
    make_emulator_app: MakeApp, ledger: LedgerStore
) -> None:
    """A 503 (not processed by the emulator, ambiguous for the client) then a re-send in the
    same run: the batch's people passed the run's uniqueness check once, which used to refuse
    the re-send as ``RESEND_REFUSED:ValueError`` ("person key appears twice")."""
    async with sync_env(make_emulator_app, ledger, notify=False) as env:
        env.queue_fault("503")
        result = await env.run(people(100), resend_ambiguous=True)
        assert result.held_batches == []
        assert result.status_counts == {"ACCEPTED": 100} and result.delivered == 100
        (batch,) = ledger.batches(AUDIENCE, PARTITION, CAMPAIGN)
        assert batch.state is BatchState.REPORTED and batch.resent
        assert len(await env.flow_members()) == 100


async def test_a_refused_resend_says_why_in_words(
    make_emulator_app: MakeApp, ledger: LedgerStore
) -> None:
    async with sync_env(make_emulator_app, ledger, notify=False) as env:
        env.queue_fault("500")
        first = await env.run(people(100))
        (held,) = first.held_batches
        # One of the held batch's people is no longer in the input: no body to send.
        second = await env.run(people(99), resend_ambiguous=True)
        (still,) = second.held_batches
        assert still.batch_id == held.batch_id
        assert still.reason.startswith(f"re-send refused: batch {held.batch_id} has people")
        assert "missing from this run's input" in still.reason
        assert "HTTP_500" in still.reason  # why it was held in the first place
        assert "ValueError" not in still.reason
        (stored,) = ledger.batches(AUDIENCE, PARTITION, CAMPAIGN)
        assert stored.state is BatchState.HELD and stored.reason == still.reason
        assert env.add_requests() == 0
