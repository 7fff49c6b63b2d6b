"""CallbackReceiver on a public address: body limit while streaming, token, bounded counting.

The body limit is asserted where it matters: how many body bytes the receiver pulled from the
connection (an ASGI ``receive`` that counts), never more than the limit plus one chunk, and the
handler never called; once more through a real uvicorn socket with a chunked body and a huge
Content-Length.
"""

from __future__ import annotations

import logging
import secrets
import select
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from moments_pipeline.infobip import (
    DEFAULT_MAX_BODY_BYTES,
    CallbackOutcome,
    CallbackReceiver,
    CallbackServer,
    RawReport,
)

TOKEN = secrets.token_urlsafe(16)
PATH = f"/moments/callbacks/{TOKEN}"
LIMIT = 64 * 1024
CHUNK = 16 * 1024


def _report(callback_data: str = "b1", participants: int = 1) -> bytes:
    return orjson.dumps(
        {
            "operationId": "op-1",
            "campaignId": 42,
            "callbackData": callback_data,
            "participants": [
                {
                    "identifyBy": {"identifier": f"4179{i:07d}", "type": "PHONE"},
                    "status": "ACCEPTED",
                }
                for i in range(participants)
            ],
        }
    )


class _Counting:
    """An ASGI request fed in chunks; counts the body bytes the app actually pulled."""

    def __init__(self, total: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.total, self.headers, self.pulled = total, headers, 0
        self.status: int | None = None

    async def run(self, app: Any, path: str = PATH, method: str = "POST") -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": self.headers,
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }

        async def receive() -> dict[str, Any]:
            size = min(CHUNK, self.total - self.pulled)
            self.pulled += size
            return {
                "type": "http.request",
                "body": b"x" * size,
                "more_body": self.pulled < self.total,
            }

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]

        await app(scope, receive, send)
        assert self.status is not None
        return self.status


@pytest.fixture
def got() -> list[RawReport]:
    return []


@pytest.fixture
def receiver(got: list[RawReport]) -> CallbackReceiver:
    return CallbackReceiver(token=TOKEN, raw_handler=got.append, max_body_bytes=LIMIT)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([(b"transfer-encoding", b"chunked")], id="chunked"),
        pytest.param([], id="no-content-length"),
        pytest.param([(b"content-length", b"100")], id="lying-content-length"),
    ],
)
async def test_oversize_body_is_413_after_reading_at_most_the_limit(
    receiver: CallbackReceiver, got: list[RawReport], headers: list[tuple[bytes, bytes]]
) -> None:
    request = _Counting(total=185 * 1024 * 1024, headers=headers)  # the trial's 185 MB
    assert await request.run(receiver) == 413
    assert request.pulled <= LIMIT + CHUNK  # never buffered beyond the limit plus one chunk
    assert got == []
    assert receiver.stats.too_large == 1


async def test_declared_oversize_is_413_before_any_byte_is_read(
    receiver: CallbackReceiver, got: list[RawReport]
) -> None:
    request = _Counting(total=185 * 1024 * 1024, headers=[(b"content-length", b"193986560")])
    assert await request.run(receiver) == 413
    assert request.pulled == 0
    assert got == []


async def test_malformed_content_length_is_400(receiver: CallbackReceiver) -> None:
    request = _Counting(total=10, headers=[(b"content-length", b"ten")])
    assert await request.run(receiver) == 400
    assert receiver.stats.invalid == 1


async def test_body_at_the_limit_is_read_one_byte_more_is_not() -> None:
    body = _report(participants=400)
    got: list[RawReport] = []
    exact = CallbackReceiver(token=TOKEN, raw_handler=got.append, max_body_bytes=len(body))
    short = CallbackReceiver(token=TOKEN, raw_handler=got.append, max_body_bytes=len(body) - 1)
    for app, status in ((exact, 200), (short, 413)):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cb") as http:
            assert (await http.post(PATH, content=body)).status_code == status
    assert len(got) == 1


def test_default_limit_holds_a_full_report_and_tokens_are_per_receiver() -> None:
    assert len(_report(participants=1000)) < DEFAULT_MAX_BODY_BYTES // 4
    one, two = CallbackReceiver(), CallbackReceiver()
    assert one.path != two.path  # a new receiver (one per run) has a new token
    token = one.path.rsplit("/", 1)[1]
    assert len(token) >= 43  # token_urlsafe(32): 256 bits
    with pytest.raises(ValueError, match="at least 22"):
        CallbackReceiver(token="x" * 21)


async def test_wrong_token_is_404_for_every_method_right_token_is_accepted(
    receiver: CallbackReceiver, got: list[RawReport], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    transport = httpx.ASGITransport(app=receiver)
    async with httpx.AsyncClient(transport=transport, base_url="http://cb") as http:
        wrong = TOKEN[:-1] + ("A" if TOKEN[-1] != "A" else "B")
        for method in ("POST", "GET", "PUT", "DELETE"):
            answer = await http.request(method, f"/moments/callbacks/{wrong}", content=_report())
            assert answer.status_code == 404
            assert answer.text == "Not Found"
        assert (await http.get(PATH)).status_code == 405
        assert (await http.post(PATH, content=_report())).status_code == 200
    assert [r.callback_data for r in got] == ["b1"]
    assert receiver.stats.bad_token == 4
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("moments_pipeline")]
    assert ours and not any(TOKEN in line for line in ours)  # (httpx, the client, logs URLs)
    assert TOKEN not in repr(receiver) and TOKEN not in repr(receiver.stats)
    assert TOKEN not in receiver.redacted_notify_url("https://hooks.example.com")
    assert receiver.redacted_notify_url("https://h.example/") == (
        "https://h.example/moments/callbacks/<token>"
    )


async def test_handler_outcomes_are_counted_and_logged_sparingly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="moments_pipeline.infobip.callbacks")
    outcomes = iter([CallbackOutcome.REJECTED] + [CallbackOutcome.UNKNOWN] * 9 + [None])
    receiver = CallbackReceiver(token=TOKEN, raw_handler=lambda _r: next(outcomes))
    transport = httpx.ASGITransport(app=receiver)
    async with httpx.AsyncClient(transport=transport, base_url="http://cb") as http:
        for i in range(11):
            assert (await http.post(PATH, content=_report(f"b{i}"))).status_code == 200
    stats = receiver.stats.as_dict()
    assert (stats["rejected"], stats["unknown"], stats["accepted"]) == (1, 9, 1)
    unknown_lines = [r for r in caplog.records if "names no known batch" in r.getMessage()]
    assert len(unknown_lines) == 4  # the 1st, 2nd, 4th and 8th of nine
    assert "b1" not in caplog.text  # callbackData is not logged either


async def test_kept_reports_are_bounded_in_bytes() -> None:
    body = _report(participants=50)
    receiver = CallbackReceiver(token=TOKEN, keep_reports=100, keep_bytes=3 * len(body))
    transport = httpx.ASGITransport(app=receiver)
    async with httpx.AsyncClient(transport=transport, base_url="http://cb") as http:
        for i in range(10):
            await http.post(PATH, content=_report(f"b{i}", participants=50))
    assert receiver.kept == 3


# -- through a real socket ------------------------------------------------------------------


@pytest.fixture
def served(receiver: CallbackReceiver) -> Iterator[tuple[CallbackServer, _Meter]]:
    meter = _Meter(receiver.app)
    receiver.app = meter  # type: ignore[assignment]  # count what the app pulls off the socket
    with CallbackServer(receiver) as server:
        yield server, meter


class _Meter:
    def __init__(self, app: Any) -> None:
        self.app, self.pulled = app, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def counting() -> Any:
            message = await receive()
            self.pulled += len(message.get("body", b""))
            return message

        await self.app(scope, counting, send)


def _raw_post(server: CallbackServer, head: bytes, body_chunks: Iterator[bytes]) -> bytes:
    """Send ``head`` then chunks until the server answers; return the answer's first bytes."""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        for chunk in body_chunks:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        return sock.recv(64)


def _chunked(total: int) -> Iterator[bytes]:
    piece = b"x" * CHUNK
    sent = 0
    while sent < total:
        yield b"%x\r\n%s\r\n" % (len(piece), piece)
        sent += len(piece)
    yield b"0\r\n\r\n"


def test_served_chunked_oversize_is_413(
    served: tuple[CallbackServer, _Meter], got: list[RawReport]
) -> None:
    server, meter = served
    head = (
        f"POST {PATH} HTTP/1.1\r\nhost: cb\r\ncontent-type: application/json\r\n"
        "transfer-encoding: chunked\r\n\r\n"
    ).encode()
    answer = _raw_post(server, head, _chunked(50 * 1024 * 1024))
    assert answer.startswith(b"HTTP/1.1 413")
    assert meter.pulled <= LIMIT + 128 * 1024  # uvicorn hands at most its read-ahead per chunk
    assert got == []


def test_served_huge_content_length_is_413_unread(
    served: tuple[CallbackServer, _Meter], got: list[RawReport]
) -> None:
    server, meter = served
    head = f"POST {PATH} HTTP/1.1\r\nhost: cb\r\ncontent-length: 193986560\r\n\r\n".encode()
    answer = _raw_post(server, head, iter([b"x" * CHUNK] * 64))
    assert answer.startswith(b"HTTP/1.1 413")
    assert meter.pulled <= 128 * 1024
    assert got == []


def test_served_report_within_the_limit_is_accepted(
    served: tuple[CallbackServer, _Meter], got: list[RawReport]
) -> None:
    server, _ = served
    answer = httpx.post(server.notify_url, content=_report(participants=100), timeout=10)
    assert answer.status_code == 200
    assert [r.participants for r in got] == [100]
    assert TOKEN not in repr(server) and TOKEN not in server.redacted_notify_url
