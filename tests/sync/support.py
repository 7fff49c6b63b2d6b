"""Helpers of the sync tests: participants, an in-process sync environment, emulator reads."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from moments_pipeline.emulator import Emulator, FlowConfig, QueuedFault
from moments_pipeline.emulator.testing import EmulatorTransport
from moments_pipeline.infobip import CallbackReceiver, MomentsClient, MomentsClientConfig
from moments_pipeline.sync import (
    LedgerStore,
    MomentsFlowDestination,
    QuarantineRow,
    SyncEngine,
    SyncOptions,
    SyncParticipant,
    SyncResult,
    ledger_callback_handler,
)

CAMPAIGN = 200000000000777
AUDIENCE = "vip"
PARTITION = "2026-11-25"


def people(n: int, *, start: int = 0) -> list[SyncParticipant]:
    """``n`` distinct people, each with an email identifyBy, an externalId and a phone."""
    return [
        SyncParticipant(
            f"person-{i:06d}",
            {
                "identifyBy": {"type": "EMAIL", "identifier": f"user{i}@example.com"},
                "person": {
                    "externalId": f"ext-{i}",
                    "contactInformation": {"phone": [{"number": f"4179{i:07d}"}]},
                },
            },
        )
        for i in range(start, start + n)
    ]


def client_config(base_url: str = "http://127.0.0.1:9") -> MomentsClientConfig:
    """Fast client settings for tests: no pacing to speak of, quick retries."""
    return MomentsClientConfig(
        base_url=base_url,
        api_key="test-key",
        rate_per_s=1000,
        max_attempts=2,
        backoff_initial_s=0.0,
        backoff_max_s=0.0,
        read_timeout_s=5,
    )


def fast_options(**overrides: Any) -> SyncOptions:
    """Engine options with short waits for in-process runs."""
    values: dict[str, Any] = {
        "batch_size": 100,
        "check_interval_s": 0.01,
        "flush_interval_s": 0.05,
        "callback_grace_s": 2.0,
        "report_deadline_s": 10.0,
        "poll_timeout_s": 1.0,
    }
    values.update(overrides)
    return SyncOptions(**values)


def _dead_receiver() -> Starlette:
    async def refuse(_: Request) -> PlainTextResponse:
        return PlainTextResponse("unavailable", status_code=503)

    return Starlette(routes=[Route("/{path:path}", refuse, methods=["POST"])])


@dataclass
class SyncEnv:
    """An emulator app, its state, and a way to run the engine against it."""

    app: Starlette
    emulator: Emulator
    ledger: LedgerStore
    notify: bool
    receiver: CallbackReceiver

    async def run(
        self,
        participants: list[SyncParticipant],
        *,
        audience: str = AUDIENCE,
        campaign_id: int = CAMPAIGN,
        quarantine: Sequence[QuarantineRow] = (),
        run_id: str | None = None,
        api_key: str = "test-key",
        wall_clock: Callable[[], float] | None = None,
        **options: Any,
    ) -> SyncResult:
        config = client_config().model_copy(update={"api_key": SecretStr(api_key)})
        async with MomentsClient(config, transport=EmulatorTransport(self.app)) as client:
            notify_url = self.receiver.notify_url("http://receiver.test") if self.notify else None
            destination = MomentsFlowDestination(
                client, notify_url=notify_url, poll_initial_interval_s=0.05
            )
            engine = SyncEngine(
                destination, self.ledger, options=fast_options(**options), wall_clock=wall_clock
            )
            return await engine.run(
                audience=audience,
                partition_key=PARTITION,
                campaign_id=campaign_id,
                participants=participants,
                quarantine=quarantine,
                run_id=run_id,
            )

    def add_requests_per_identifier(self) -> Counter[str]:
        """How many add requests the emulator processed for each identifyBy identifier."""
        counts: Counter[str] = Counter()
        for op in list(self.emulator.operations.values()):
            for ident in op.identify_by:
                counts[ident["identifier"] if isinstance(ident, dict) else str(ident)] += 1
        return counts

    def queue_fault(self, kind: str, count: int = 1) -> None:
        self.emulator.faults.enqueue(
            QueuedFault(kind=kind, count=count, operation="add-flow-participants")
        )

    async def inspect(self, path: str) -> Any:
        async with httpx.AsyncClient(
            transport=EmulatorTransport(self.app), base_url="http://emulator.test"
        ) as c:
            answer = await c.get(path)
            answer.raise_for_status()
            return answer.json()

    async def flow_members(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.inspect(
            f"/_emulator/flows/{CAMPAIGN}/participants"
        )
        return result

    async def merges(self) -> list[Any]:
        result: list[Any] = await self.inspect("/_emulator/merges")
        return result

    def add_requests(self) -> int:
        """Add operations the emulator accepted (a dropped-after answer still counts)."""
        return len(self.emulator.operations)

    async def settle(self) -> None:
        """Let the emulator's worker process what is due and deliver callbacks."""
        for _ in range(50):
            await asyncio.sleep(0.02)
            if not self.emulator._pending:
                break


@asynccontextmanager
async def sync_env(
    make_emulator_app: Callable[..., Starlette],
    ledger: LedgerStore,
    *,
    notify: bool = True,
    callbacks_reach_us: bool = True,
    **emulator_overrides: Any,
) -> AsyncIterator[SyncEnv]:
    """An in-process emulator whose notifyUrl POSTs reach a receiver recording into ``ledger``."""
    receiver = CallbackReceiver(raw_handler=ledger_callback_handler(ledger))
    target: Any = receiver if callbacks_reach_us else _dead_receiver()
    settings: dict[str, Any] = {
        "processing_delay_s": 0.0,
        "flows": [FlowConfig(campaign_id=CAMPAIGN)],
    }
    settings.update(emulator_overrides)
    app = make_emulator_app(callback_transport=httpx.ASGITransport(app=target), **settings)
    env = SyncEnv(app, app.state.emulator, ledger, notify, receiver)
    ledger.ensure_schema()
    yield env
