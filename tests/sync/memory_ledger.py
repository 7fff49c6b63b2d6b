"""An in-memory ``LedgerStore`` for the protocol-boundary test (the engine must not care).

Deliberately independent of the SQL store: plain dicts, no warehouse.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Sequence

import orjson

from moments_pipeline.identity import rules
from moments_pipeline.sync import (
    IN_FLOW_REASON,
    MAY_HAVE_LEFT,
    NEVER_LEFT,
    BatchMember,
    BatchRecord,
    BatchState,
    CallbackVerdict,
    IllegalTransition,
    Lease,
    OperationReport,
    QuarantineRow,
    StatusRow,
    check_status_transition,
    check_transition,
)
from tests.sync.memory_removals import MemoryRemovals

MAX_PENDING_CALLBACKS = 4  # the SQL store's bound, restated: this double shares no code with it
_SENT_OR_LATER = MAY_HAVE_LEFT


class MemoryLedgerStore(MemoryRemovals):
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
                if self.outbox[b].state in NEVER_LEFT:
                    del self.outbox[b]
                    del self.members[b]

    def claim_batch(self, batch_id: str, run_id: str) -> bool:
        with self._lock:
            current = self.outbox.get(batch_id)
            if current is None or current.state is not BatchState.PLANNED:
                return False
            check_transition(current.state, BatchState.CLAIMED)
            self.outbox[batch_id] = dataclasses.replace(
                current, state=BatchState.CLAIMED, claimed_by=run_id
            )
            return True

    def mark_sending(
        self,
        batch_id: str,
        expected: Sequence[BatchState] = (BatchState.CLAIMED,),
        *,
        claimed_by: str | None = None,
        answers: Sequence[BatchRecord] = (),
        resend: bool = False,
    ) -> bool:
        with self._lock:
            self._apply(answers)
            current = self.outbox.get(batch_id)
            if current is None or current.state not in expected:
                return False
            if claimed_by is not None and current.claimed_by != claimed_by:
                return False
            check_transition(current.state, BatchState.SENDING)
            self.sending_marks.append(batch_id)
            self.outbox[batch_id] = dataclasses.replace(
                current, state=BatchState.SENDING, resent=current.resent or resend
            )
            return True

    def hold_unanswered(self, batch_ids: Sequence[str], reason: str) -> list[str]:
        with self._lock:
            held = []
            for b in batch_ids:
                current = self.outbox.get(b)
                if current is not None and current.state is BatchState.SENDING:
                    check_transition(current.state, BatchState.HELD)
                    self.outbox[b] = dataclasses.replace(
                        current, state=BatchState.HELD, reason=reason
                    )
                    held.append(b)
            return held

    def unmark_sending(self, batch_id: str, run_id: str) -> bool:
        with self._lock:
            current = self.outbox.get(batch_id)
            if current is None or current.state is not BatchState.SENDING:
                return False
            if current.claimed_by != run_id:
                return False
            self.outbox[batch_id] = dataclasses.replace(current, state=BatchState.CLAIMED)
            return True

    def update_batches(self, updates: Sequence[BatchRecord]) -> None:
        with self._lock:
            before = dict(self.outbox)
            try:
                self._apply(updates)
            except IllegalTransition:
                self.outbox = before
                raise

    def _apply(self, updates: Sequence[BatchRecord]) -> None:
        for u in updates:
            current = self.outbox.get(u.batch_id)
            if current is None:
                raise IllegalTransition("batch", None, u.state.value, u.batch_id)
            # As the SQL ledger: a second record of the same final report changes nothing.
            if (
                u.state is BatchState.REPORTED
                and u.operation_id is not None
                and (current.state, current.operation_id) == (BatchState.REPORTED, u.operation_id)
            ):
                continue
            check_transition(current.state, u.state, u.batch_id)
            self.outbox[u.batch_id] = u

    def upsert_statuses(self, rows: Sequence[StatusRow]) -> None:
        with self._lock:
            for r in rows:
                old = self.status.get((r.campaign_id, r.person_key))
                check_status_transition(old.status if old else None, r.status, r.person_key)
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

    def accept_callback(
        self, callback_data: str, operation_id: str, campaign_id: int, payload: str
    ) -> CallbackVerdict:
        # The SQL store's rules, on dicts: see SqlLedgerStore.accept_callback.
        with self._lock:
            batch = self.outbox.get(callback_data)
            if batch is None:
                return CallbackVerdict.UNKNOWN
            known = batch.operation_id
            if batch.campaign_id != campaign_id or known not in (None, operation_id):
                return CallbackVerdict.MISMATCH
            others = [k for k in self.received if k[0] == callback_data and k[1] != operation_id]
            if known is None and len(others) >= MAX_PENDING_CALLBACKS:
                return CallbackVerdict.MISMATCH
            if known is not None:
                for key in others:
                    del self.received[key]
            report = OperationReport.from_payload(orjson.loads(payload))
            self.received[(callback_data, operation_id)] = report
            return CallbackVerdict.PENDING if known is None else CallbackVerdict.STORED

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

    def identifier_conflicts(self, limit: int) -> list[tuple[str, str]]:
        with self._lock:
            profiles: dict[tuple[str, str], set[str]] = {}
            for b, ms in self.members.items():
                if self.outbox[b].state not in _SENT_OR_LATER:
                    continue
                for m in ms:
                    key = (m.kind, rules.comparable(m.kind, m.identifier))
                    profiles.setdefault(key, set()).add(m.profile_anchor or m.person_key)
            return sorted(k for k, anchors in profiles.items() if len(anchors) > 1)[:limit]
