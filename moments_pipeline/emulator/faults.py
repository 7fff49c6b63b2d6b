"""Fault injection: seeded random faults plus a queue of deterministic next-N faults.

Queued faults are consumed first, in order, by the first request whose spec operationId
matches (``operation=None`` matches any API request); then the random rates are drawn from a
seeded ``random.Random`` so soak runs are reproducible. Only requests of spec operations are
subject to faults, never ``/_emulator/``.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

from .settings import FaultSettings, QueuedFault

__all__ = ["FaultController", "FaultDecision"]


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """The fault applied to one request.

    Attributes:
        kind: ``500``/``502``/``503``/``429``/``drop_before``/``drop_after`` or None.
        latency_s: Delay added to the answer, after processing.
    """

    kind: str | None = None
    latency_s: float = 0.0

    @property
    def is_fault(self) -> bool:
        """True when anything is injected."""
        return self.kind is not None or self.latency_s > 0


NO_FAULT = FaultDecision()


class FaultController:
    """Decides the fault of each request.

    Args:
        settings: Initial fault settings (their ``queue`` seeds the deterministic queue).
    """

    def __init__(self, settings: FaultSettings) -> None:
        self._lock = threading.Lock()
        self.configure(settings)

    def configure(self, settings: FaultSettings) -> None:
        """Replace the settings, reseed the random draws and reset the queue."""
        with self._lock:
            self.settings = settings
            self._rng = random.Random(settings.seed)
            self._queue: list[list[Any]] = [[q, q.count] for q in settings.queue]

    def enqueue(self, fault: QueuedFault) -> None:
        """Queue a deterministic fault for the next ``fault.count`` matching requests."""
        with self._lock:
            self._queue.append([fault, fault.count])

    def queued(self) -> list[dict[str, Any]]:
        """Return the queue with the remaining count of each entry."""
        with self._lock:
            return [{**q.model_dump(), "count": left} for q, left in self._queue]

    def view(self) -> dict[str, Any]:
        """Return settings and queue as JSON-ready data."""
        data = self.settings.model_dump(exclude={"queue"})
        data["queue"] = self.queued()
        return data

    def decide(self, operation: str) -> FaultDecision:
        """Return the fault for a request of spec operation ``operation``."""
        s = self.settings
        base_latency = s.latency_ms / 1000.0
        with self._lock:
            for entry in self._queue:
                fault, left = entry
                if fault.operation is not None and fault.operation != operation:
                    continue
                entry[1] = left - 1
                if entry[1] <= 0:
                    self._queue.remove(entry)
                if fault.kind == "latency":
                    return FaultDecision(None, base_latency + (fault.latency_ms or 0) / 1000.0)
                return FaultDecision(fault.kind, base_latency)
            if not (
                s.drop_before_rate or s.error_rate or s.too_many_requests_rate or s.drop_after_rate
            ):
                return FaultDecision(None, base_latency) if base_latency else NO_FAULT
            rng = self._rng
            kind: str | None = None
            if rng.random() < s.drop_before_rate:
                kind = "drop_before"
            elif rng.random() < s.error_rate:
                kind = str(rng.choice(s.error_statuses))
            elif rng.random() < s.too_many_requests_rate:
                kind = "429"
            elif rng.random() < s.drop_after_rate:
                kind = "drop_after"
            return FaultDecision(kind, base_latency)
