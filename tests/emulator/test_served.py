"""The emulator served by uvicorn on loopback: real sockets, real drops, restarts with state."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from moments_pipeline.emulator import (
    ConfigError,
    EmulatorSettings,
    ManualClock,
    SystemClock,
    create_app,
    load_settings,
)
from moments_pipeline.emulator.flows import AddRequest
from moments_pipeline.emulator.testing import EmulatorTransport, ServedEmulator
from tests.emulator.conftest import ADD, FLOW, REPORT, email

pytestmark = pytest.mark.served
AUTH = {"Authorization": "App test-key"}
BODY = {"participants": [email("a@x.com")]}


def _client(served: ServedEmulator, **kw: Any) -> httpx.Client:
    return httpx.Client(base_url=served.base_url, headers=AUTH, **kw)


@pytest.mark.parametrize("kind", ["drop_before", "drop_after"])
def test_served_drops_are_real_disconnects(served_emulator: ServedEmulator, kind: str) -> None:
    with _client(served_emulator) as client:
        client.post("/_emulator/faults/next", json={"kind": kind})
        # A close with the request body still unread may reach the client as a reset (the
        # kernel's RST) rather than an orderly EOF: both are the dropped connection.
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.post(ADD, json=BODY)
        assert len(served_emulator.emulator.operations) == (1 if kind == "drop_after" else 0)
        # the server itself is fine afterwards
        assert client.post(ADD, json=BODY).status_code == 200


def test_served_latency_fires_the_read_timeout_after_processing(
    served_emulator: ServedEmulator,
) -> None:
    with _client(served_emulator, timeout=httpx.Timeout(5.0, read=0.3)) as client:
        client.post("/_emulator/faults/next", json={"kind": "latency", "latency_ms": 1500})
        with pytest.raises(httpx.ReadTimeout):
            client.post(ADD, json=BODY)
    assert len(served_emulator.emulator.operations) == 1


def test_served_general_error_and_auth(served_emulator: ServedEmulator) -> None:
    with _client(served_emulator) as client:
        client.post("/_emulator/faults/next", json={"kind": "503"})
        assert client.post(ADD, json=BODY).status_code == 503
        assert client.post(ADD, json=BODY, headers={"Authorization": "App nope"}).status_code == 401


async def test_state_survives_a_clean_restart(
    tmp_path: Path, emulator_settings: EmulatorSettings, emulator_registry: list[Any]
) -> None:
    settings = emulator_settings.model_copy(update={"state_path": tmp_path / "state.jsonl"})
    clock = ManualClock()
    app = create_app(settings, clock=clock)
    emulator_registry.append(app)
    async with httpx.AsyncClient(
        transport=EmulatorTransport(app), base_url="http://e", headers=AUTH
    ) as client:
        done = (await client.post(ADD, json=BODY)).json()["operationId"]
        app.state.emulator.advance(1)
        pending = (
            await client.post(ADD, json={"participants": [email("b@x.com"), email("A@x.com")]})
        ).json()["operationId"]
    before = app.state.emulator.snapshot()
    await app.state.emulator.aclose()
    again = create_app(settings, clock=clock)
    emulator_registry.append(again)
    restored = again.state.emulator
    assert restored.snapshot() == before
    assert restored.operations[pending].results is None
    restored.advance(1)
    statuses = [p["status"] for p in restored.operations[pending].report()["participants"]]
    assert statuses == ["ACCEPTED", "REJECTED"]
    assert restored.operations[done].results[0]["status"] == "ACCEPTED"


def test_state_survives_sigkill_mid_stream(tmp_path: Path, emulator_registry: list[Any]) -> None:
    state = tmp_path / "state.jsonl"
    settings = EmulatorSettings(rate_limit_per_s=None, processing_delay_s=10, record_exchanges=True)
    served = ServedEmulator(settings, subprocess=True, manual_clock=True, state_path=state)
    emulator_registry.append(served)
    with served:
        # The key reached the child through MOMENTS_EMULATOR_API_KEY, not its command line.
        assert b"test-key" not in Path(f"/proc/{served.pid}/cmdline").read_bytes()
        with _client(served) as client:
            first = client.post(
                ADD, json={"participants": [email("a@x.com"), email("b@x.com", externalId="b")]}
            ).json()["operationId"]
            client.post("/_emulator/clock/advance", json={"seconds": 10})
            second = client.post(
                ADD, json={"participants": [email("b@x.com"), email("c@x.com")]}
            ).json()["operationId"]
            assert (
                client.get(REPORT, params={"operationId": second}).json()["participants"][0][
                    "status"
                ]
                == "PENDING"
            )
        served.kill()
        served.start()
        with _client(served) as client:
            report = client.get(REPORT, params={"operationId": first}).json()
            assert [p["status"] for p in report["participants"]] == ["ACCEPTED", "ACCEPTED"]
            assert (
                client.get(REPORT, params={"operationId": second}).json()["participants"][0][
                    "status"
                ]
                == "PENDING"
            )
            # the manual clock restarts at its origin: the operation is due 20 s after it
            client.post("/_emulator/clock/advance", json={"seconds": 20})
            report = client.get(REPORT, params={"operationId": second}).json()
            assert [p.get("errorReason") for p in report["participants"]] == [
                "REJECTED_PERSON_IN_FLOW",
                None,
            ]
            people = client.get("/_emulator/people").json()
            assert sorted(e for p in people for e in p["emails"]) == [
                "a@x.com",
                "b@x.com",
                "c@x.com",
            ]
    assert state.read_bytes().count(b"\n") == 1  # compacted on the clean stop
    # Both lives of the child recorded their answers; the contract fixture validates them.
    assert served.exchange_fetch_errors == []
    assert [e.operation for e in served.exchanges if e.operation] == [
        "add-flow-participants",
        "add-flow-participants",
        "get-flow-participants-added-report",
        "get-flow-participants-added-report",
        "get-flow-participants-added-report",
        "get-flow-participants-added-report",
    ]


def test_config_errors_name_file_and_field(tmp_path: Path) -> None:
    config = tmp_path / "emulator.yaml"
    config.write_text("flows:\n  - campaign_id: abc\n")
    with pytest.raises(ConfigError, match=r"emulator\.yaml.*flows\.0\.campaign_id"):
        load_settings(config)
    config.write_text("credits: 5\nflows:\n  - campaign_id: 42\n    allow_reentry: true\n")
    settings = load_settings(config)
    assert settings.credits == 5
    assert set(settings.all_flows()) == {FLOW, 10159347, 42}


class _JumpClock(SystemClock):
    """The wall clock plus an offset the test can jump (still not a ManualClock)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


def test_a_report_during_a_large_backlog_answers_at_once(
    emulator_settings: EmulatorSettings, emulator_registry: list[Any]
) -> None:
    # Each participant carries 10 contact emails: 120 operations of 1000 participants are
    # ~1.3 M identifier lookups, seconds of processing for the background worker.
    contacts = [{"address": f"c{j}@x.com"} for j in range(10)]
    participants = [
        email(f"p{i}@x.com", contactInformation={"email": contacts}) for i in range(1000)
    ]
    request = AddRequest(participants, None, None)
    clock = _JumpClock()
    settings = emulator_settings.model_copy(update={"processing_delay_s": 3600.0})
    with ServedEmulator(settings, clock=clock) as served:
        emulator_registry.append(served.emulator)
        emulator = served.emulator
        # Queued from this thread while none of them is due, so the serving thread's worker
        # does not touch them yet; the clock jump below makes them all due at once.
        ops = [emulator.accept(FLOW, request, b"") for _ in range(120)]
        with _client(served, timeout=30.0) as client:
            # Warm up first (lazy imports, the keep-alive connection): the first request of
            # a process, contending for the GIL with the busy worker thread, is no measure.
            warm = client.get(REPORT, params={"operationId": ops[-1].operation_id})
            assert warm.status_code == 200
            clock.offset = 7200.0
            time.sleep(0.1)  # the worker is now busy with the backlog
            sent = time.perf_counter()
            answer = client.get(REPORT, params={"operationId": ops[-1].operation_id})
            # The background worker still drains the backlog by itself.
            while ops[-1].verdicts is None and time.perf_counter() - sent < 60:
                time.sleep(0.05)
        # Operations complete in acceptance order, and a report that worked off what was due
        # (the old behaviour) would carry final verdicts: PENDING for the last operation means
        # the report was answered while the backlog was there, without processing it.
        assert answer.status_code == 200
        assert {p["status"] for p in answer.json()["participants"]} == {"PENDING"}
        assert ops[-1].verdicts is not None, "the worker never drained the backlog"


def test_the_cli_needs_a_key_from_the_flag_or_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from moments_pipeline.emulator.cli import API_KEY_ENV, add_arguments, run

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    assert run(parser.parse_args(["--port", "1"])) == 2
    assert API_KEY_ENV in capsys.readouterr().err
