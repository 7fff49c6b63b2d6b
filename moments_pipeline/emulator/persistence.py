"""The state journal: append-only orjson lines, flushed per request, replayed at start.

Each line is one applied mutation (an accepted operation, a processed operation with the
People upserts it made, a removal, a forms state change, a reset) or a snapshot. A clean
shutdown compacts the file into a single snapshot line (written to a temporary file, then
renamed over the journal). A line cut short by a ``kill -9`` while being written can only be
the last one; it is ignored, which loses at most the request that was being answered.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

__all__ = ["Journal", "read_journal"]


def read_journal(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the records of a journal file (nothing if it does not exist)."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        lines = handle.read().split(b"\n")
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            if number >= len(lines) - 2:
                return  # the torn tail of a killed writer
            raise ValueError(f"{path}: line {number + 1} of the state journal is corrupt") from None
        yield record


class Journal:
    """Appends records to the journal file.

    Args:
        path: The state file (created with its parent directories when missing).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: IO[bytes] = path.open("ab")

    def write(self, record: dict[str, Any], *, flush: bool = True) -> None:
        """Append one record; ``flush`` hands it to the OS (survives a killed process)."""
        self._handle.write(orjson.dumps(record) + b"\n")
        if flush:
            self._handle.flush()

    def write_add(
        self, operation_id: str, campaign_id: int, body: bytes, at: float, due: float
    ) -> None:
        """Append an accepted add operation, embedding the validated JSON ``body`` as sent.

        Args:
            operation_id: The operationId.
            campaign_id: The flow.
            body: The request body, already validated as JSON (not re-serialized).
            at: Acceptance time.
            due: Time from which it may be processed.
        """
        if b"\n" in body:
            # Valid JSON holds newlines only as whitespace (never inside strings): one line.
            body = body.replace(b"\n", b" ")
        head = orjson.dumps(
            {"t": "add", "op": operation_id, "campaign": campaign_id, "at": at, "due": due}
        )
        handle = self._handle
        handle.write(head[:-1])
        handle.write(b',"body":')
        handle.write(body)
        handle.write(b"}\n")
        handle.flush()

    def flush(self) -> None:
        """Hand buffered records to the OS."""
        self._handle.flush()

    def compact(self, snapshot: dict[str, Any]) -> None:
        """Replace the journal with one snapshot record (atomic rename)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("wb") as out:
            out.write(orjson.dumps({"t": "snapshot", **snapshot}) + b"\n")
            out.flush()
            os.fsync(out.fileno())
        self._handle.close()
        os.replace(tmp, self.path)
        self._handle = self.path.open("ab")

    def close(self) -> None:
        """Flush and close the file."""
        if not self._handle.closed:
            self._handle.flush()
            self._handle.close()
