"""An in-memory ``LedgerStore`` for the protocol-boundary test (the engine must not care).

Deliberately independent of the SQL store: plain dicts, no warehouse.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Sequence

from moments_pipeline.sync import (
    IN_FLOW_REASON,
    BatchMember,
    BatchRecord,
    BatchState,
    Lease,
    OperationReport,
    QuarantineRow,
    StatusRow,
)

_SENT_OR_LATER = {BatchState.SENDING, BatchState.SENT, BatchState.HELD, BatchState.REPORTED}


class MemoryLedgerStore:
    def __init__(self) -> None:
        self.outbox: dict[str, BatchRecord] = {}
        self.members: dict[str, list[BatchMember]] = {}
        self.status: dict[tuple[int, str], StatusRow] = {}
        self.quarantined: list[QuarantineRow] = []
        self.received: dict[tuple[str, str], OperationReport] = {}
        self.sending_marks: list[str] = []
        self.leases: dict[str, Lease] = {}
        self._lock = threading.Lock()

    def ensure_schema(self) -> None:
        return None

    def batches(self, audience: str, partition_key: str, campaign_id: int) -> list[BatchRecord]:
        with self._lock:
            return [
                b
                for b in self.outbox.values()
                if (b.audience, b.partition_key, b.campaign_id)
                == (audience, partition_key, campaign_id)
            ]

    def batch_members(self, batch_ids: Sequence[str]) -> list[BatchMember]:
        with self._lock:
            return [m for b in batch_ids for m in self.members.get(b, [])]

    def delivered_person_keys(self, campaign_id: int) -> set[str]:
        with self._lock:
            return {
                k
                for (c, k), row in self.status.items()
                if c == campaign_id
                and (
                    row.status == "ACCEPTED" or row.delivered or row.error_reason == IN_FLOW_REASON
                )
            }

    def plan_batches(self, batches: Sequence[BatchRecord], members: Sequence[BatchMember]) -> None:
        with self._lock:
            for b in batches:
                self.outbox[b.batch_id] = b
                self.members[b.batch_id] = []
            for m in members:
                self.members[m.batch_id].append(m)

    def discard_planned(self, batch_ids: Sequence[str]) -> None:
        with self._lock:
            for b in batch_ids:
                if self.outbox[b].state is BatchState.PLANNED:
                    del self.outbox[b]
                    del self.members[b]

    def mark_sending(
        self, batch_id: str, expected: Sequence[BatchState] = (BatchState.PLANNED,)
    ) -> bool:
        with self._lock:
            current = self.outbox.get(batch_id)
            if current is None or current.state not in expected:
                return False
            self.sending_marks.append(batch_id)
            self.outbox[batch_id] = dataclasses.replace(current, state=BatchState.SENDING)
            return True

    def update_batches(self, updates: Sequence[BatchRecord]) -> None:
        with self._lock:
            for u in updates:
                self.outbox[u.batch_id] = u

    def upsert_statuses(self, rows: Sequence[StatusRow]) -> None:
        with self._lock:
            for r in rows:
                self.status[(r.campaign_id, r.person_key)] = r

    def statuses(
        self, campaign_id: int, person_keys: Iterable[str] | None = None
    ) -> list[StatusRow]:
        with self._lock:
            wanted = None if person_keys is None else set(person_keys)
            return sorted(
                (
                    r
                    for (c, k), r in self.status.items()
                    if c == campaign_id and (wanted is None or k in wanted)
                ),
                key=lambda r: r.person_key,
            )

    def record_quarantine(self, rows: Sequence[QuarantineRow]) -> None:
        with self._lock:
            scopes = {(r.audience, r.partition_key) for r in rows}
            self.quarantined = [
                q for q in self.quarantined if (q.audience, q.partition_key) not in scopes
            ] + list(rows)

    def replace_quarantine(
        self, audience: str, partition_key: str, rows: Sequence[QuarantineRow]
    ) -> None:
        with self._lock:
            self.quarantined = [
                q
                for q in self.quarantined
                if (q.audience, q.partition_key) != (audience, partition_key)
            ] + list(rows)

    def quarantine(self, audience: str, partition_key: str) -> list[QuarantineRow]:
        with self._lock:
            return sorted(
                (
                    q
                    for q in self.quarantined
                    if (q.audience, q.partition_key) == (audience, partition_key)
                ),
                key=lambda q: q.row_id,
            )

    def record_callback(self, callback_data: str, report: OperationReport) -> None:
        with self._lock:
            self.received[(callback_data, report.operation_id)] = report

    def callbacks(self, callback_data: Sequence[str]) -> dict[str, list[OperationReport]]:
        with self._lock:
            wanted = set(callback_data)
            found: dict[str, list[OperationReport]] = {}
            for (key, _), report in self.received.items():
                if key in wanted:
                    found.setdefault(key, []).append(report)
            return found

    def sent_identities(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return sorted(
                {
                    (m.kind, m.identifier, m.profile_anchor or m.person_key)
                    for b, ms in self.members.items()
                    if self.outbox[b].state in _SENT_OR_LATER
                    for m in ms
                }
            )

    def acquire_lease(
        self, scope: str, holder: str, *, description: str, now: float, ttl_s: float
    ) -> Lease:
        with self._lock:
            current = self.leases.get(scope)
            if current is None or current.expires_at < now or current.holder == holder:
                current = Lease(scope, holder, description, now + ttl_s)
                self.leases[scope] = current
            return current

    def renew_lease(self, scope: str, holder: str, *, now: float, ttl_s: float) -> bool:
        with self._lock:
            current = self.leases.get(scope)
            if current is None or current.holder != holder:
                return False
            self.leases[scope] = dataclasses.replace(current, expires_at=now + ttl_s)
            return True

    def release_lease(self, scope: str, holder: str) -> None:
        with self._lock:
            current = self.leases.get(scope)
            if current is not None and current.holder == holder:
                del self.leases[scope]
