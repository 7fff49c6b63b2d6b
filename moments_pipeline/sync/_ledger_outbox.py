"""The outbox's state changes on the shared SQL database: claims, marks, answers.

A mixin of ``SqlLedgerStore`` (``_ledger_sql``), split off so the state machine's writes sit
together. Every write is conditional in the database: the claim (``PLANNED -> CLAIMED``) and
the SENDING mark (``... AND claimed_by = ?``) are compare-and-sets with the row count checked,
and every other change lands only from a state that ``_states.BATCH_TRANSITIONS`` allows
before the new one (``predecessors``), else ``IllegalTransition`` rolls the call back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from ._protocols import BatchRecord, BatchState
from ._states import NEVER_LEFT, IllegalTransition, check_transition, predecessors

if TYPE_CHECKING:
    from moments_pipeline.warehouse import Warehouse

_CHUNK = 500
"""Parameters per IN (...) list: far below every backend's limit."""

_NEVER_LEFT = tuple(sorted(s.value for s in NEVER_LEFT))


def _chunks(items: Sequence[str], size: int = _CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class OutboxWrites:
    """The outbox's state changes; needs ``warehouse``, ``outbox`` and ``members``."""

    warehouse: Warehouse
    outbox: str
    members: str

    def discard_planned(self, batch_ids: Sequence[str]) -> None:
        """Forget batches that never left (PLANNED or CLAIMED) and their members.

        Only rows still in one of those states are touched. The caller holds the run lease, so
        a CLAIMED row is a dead run's claim (see ``_states``); its ``claimed_by`` no longer
        matches anything, so a stalled owner's SENDING mark fails even if the batch is planned
        again under the same id.
        """
        never = list(_NEVER_LEFT)
        with self.warehouse.transaction():
            for chunk in _chunks(list(batch_ids)):
                marks = _marks(len(chunk))
                self.warehouse.execute(
                    f"DELETE FROM {self.members} WHERE batch_id IN ("  # noqa: S608
                    f"SELECT batch_id FROM {self.outbox} "
                    f"WHERE state IN ({_marks(len(never))}) AND batch_id IN ({marks}))",
                    [*never, *chunk],
                )
                self.warehouse.execute(
                    f"DELETE FROM {self.outbox} "  # noqa: S608
                    f"WHERE state IN ({_marks(len(never))}) AND batch_id IN ({marks})",
                    [*never, *chunk],
                )

    def claim_batch(self, batch_id: str, run_id: str) -> bool:
        """Move one PLANNED batch to CLAIMED by ``run_id`` (compare-and-set, autocommit)."""
        check_transition(BatchState.PLANNED, BatchState.CLAIMED)
        changed = self.warehouse.execute(
            f"UPDATE {self.outbox} SET state = 'CLAIMED', claimed_by = ?, "  # noqa: S608
            "updated_at = CURRENT_TIMESTAMP WHERE batch_id = ? AND state = 'PLANNED'",
            [run_id, batch_id],
        )
        return changed == 1

    def mark_sending(
        self,
        batch_id: str,
        expected: Sequence[BatchState] = (BatchState.CLAIMED,),
        *,
        claimed_by: str | None = None,
        answers: Sequence[BatchRecord] = (),
        resend: bool = False,
    ) -> bool:
        """Mark one batch SENDING if it is in an ``expected`` state (compare-and-set).

        With ``claimed_by``, only that run's claim qualifies. ``resend`` (an operator's re-send
        of a HELD batch) also sets ``resent`` and ``resent_at``. ``answers`` are written first,
        in the same transaction. Committed when this returns; True only when this call changed
        the row (the answers are kept either way).
        """
        states = [BatchState(s) for s in expected]
        for state in states:
            check_transition(state, BatchState.SENDING)
        resent = ", resent = TRUE, resent_at = CURRENT_TIMESTAMP" if resend else ""
        sql = (
            f"UPDATE {self.outbox} SET state = 'SENDING'{resent}, "  # noqa: S608
            "updated_at = CURRENT_TIMESTAMP "
            f"WHERE batch_id = ? AND state IN ({_marks(len(states))})"
        )
        params: list[object] = [batch_id, *[s.value for s in states]]
        if claimed_by is not None:
            sql += " AND claimed_by = ?"
            params.append(claimed_by)
        with self.warehouse.transaction():
            self._apply(answers)
            changed = self.warehouse.execute(sql, params)
        return changed == 1

    def hold_unanswered(self, batch_ids: Sequence[str], reason: str) -> list[str]:
        """Move batches still SENDING to HELD with ``reason``; the ids changed."""
        check_transition(BatchState.SENDING, BatchState.HELD)
        held: list[str] = []
        with self.warehouse.transaction():
            for batch_id in batch_ids:
                changed = self.warehouse.execute(
                    f"UPDATE {self.outbox} SET state = 'HELD', reason = ?, "  # noqa: S608
                    "updated_at = CURRENT_TIMESTAMP WHERE batch_id = ? AND state = 'SENDING'",
                    [reason, batch_id],
                )
                if changed == 1:
                    held.append(batch_id)
        return held

    def unmark_sending(self, batch_id: str, run_id: str) -> bool:
        """Move a SENDING batch claimed by ``run_id`` back to CLAIMED (not processed)."""
        check_transition(BatchState.SENDING, BatchState.CLAIMED)
        changed = self.warehouse.execute(
            f"UPDATE {self.outbox} SET state = 'CLAIMED', "  # noqa: S608
            "updated_at = CURRENT_TIMESTAMP "
            "WHERE batch_id = ? AND state = 'SENDING' AND claimed_by = ?",
            [batch_id, run_id],
        )
        return changed == 1

    def update_batches(self, updates: Sequence[BatchRecord]) -> None:
        """Write state, operationId, reason, attempt, resent flag and claim, in order, atomically.

        Each row changes only from a state the transition table allows for its new state;
        anything else raises ``IllegalTransition`` and rolls the whole call back.
        """
        if not updates:
            return
        with self.warehouse.transaction():
            self._apply(updates)

    def _apply(self, updates: Sequence[BatchRecord]) -> None:
        # One conditional UPDATE per change, in order: the table decides in the database
        # which stored states may precede the new one; a miss names what was there instead.
        for u in updates:
            before = [s.value for s in predecessors(u.state)]
            changed = self.warehouse.execute(
                f"UPDATE {self.outbox} SET state = ?, operation_id = ?, reason = ?, "  # noqa: S608
                "attempt = ?, resent = ?, claimed_by = ?, updated_at = CURRENT_TIMESTAMP "
                f"WHERE batch_id = ? AND state IN ({_marks(len(before))})",
                [
                    u.state.value,
                    u.operation_id,
                    u.reason,
                    u.attempt,
                    u.resent,
                    u.claimed_by,
                    u.batch_id,
                    *before,
                ],
            )
            if changed != 1:
                rows = self.warehouse.fetch_all(
                    f"SELECT state, operation_id FROM {self.outbox} WHERE batch_id = ?",  # noqa: S608
                    [u.batch_id],
                )
                old, operation = rows[0] if rows else (None, None)
                # Two runs may both poll one operation's final report (one sent it, the other
                # resumed it): the second record of the same report changes nothing.
                if (
                    u.state is BatchState.REPORTED
                    and u.operation_id is not None
                    and (old, operation) == (BatchState.REPORTED.value, u.operation_id)
                ):
                    continue
                raise IllegalTransition("batch", old, u.state.value, u.batch_id)
