"""The in-memory ledger's removal and plan part (a mixin of ``MemoryLedgerStore``).

Deliberately independent of the SQL store, like the rest of the in-memory ledger: plain
dicts, every change checked against ``REMOVAL_TRANSITIONS`` through ``check_removal_transition``.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence

from moments_pipeline.sync import (
    IllegalTransition,
    PlanPerson,
    PlanSummary,
    RemovalRecord,
    RemovalState,
    StatusRow,
    check_removal_transition,
)


class MemoryRemovals:
    _removal_lock = threading.Lock()

    def upsert_statuses(self, rows: Sequence[StatusRow]) -> None:
        raise NotImplementedError  # the in-memory ledger's own

    def _removal_state(
        self,
    ) -> tuple[dict[str, RemovalRecord], list[PlanSummary], list[PlanPerson]]:
        if not hasattr(self, "_removal_rows"):
            self._removal_rows: dict[str, RemovalRecord] = {}
            self._plans: list[PlanSummary] = []
            self._plan_people: list[PlanPerson] = []
        return self._removal_rows, self._plans, self._plan_people

    def record_plan(
        self, summary: PlanSummary, people: Sequence[PlanPerson], removals: Sequence[RemovalRecord]
    ) -> None:
        rows, plans, plan_people = self._removal_state()
        with self._removal_lock:
            for r in removals:
                if r.state is RemovalState.PLANNED:
                    check_removal_transition(None, r.state, r.removal_id)
            scope = (summary.audience, summary.partition_key, summary.campaign_id)
            for key, r in list(rows.items()):
                if (r.audience, r.partition_key, r.campaign_id) == scope and (
                    r.state is RemovalState.PLANNED
                ):
                    rows[key] = dataclasses.replace(
                        r,
                        state=RemovalState.DISCARDED,
                        reason=f"SUPERSEDED_BY_PLAN {summary.plan_id}",
                    )
            plans.append(summary)
            plan_people.extend(people)
            for r in removals:
                if r.state is RemovalState.PLANNED:
                    rows[r.removal_id] = r

    def latest_plan(self, audience: str, partition_key: str) -> PlanSummary | None:
        _, plans, _ = self._removal_state()
        mine = [p for p in plans if (p.audience, p.partition_key) == (audience, partition_key)]
        return max(mine, key=lambda p: p.planned_at) if mine else None

    def plan_people(
        self, plan_id: str, partition_key: str = "", limit: int | None = None
    ) -> list[PlanPerson]:
        _, _, people = self._removal_state()
        found = sorted(
            (p for p in people if (p.plan_id, p.partition_key) == (plan_id, partition_key)),
            key=lambda p: (p.action.value, p.person_masked),
        )
        return found if limit is None else found[:limit]

    def removals(
        self,
        audience: str,
        partition_key: str,
        campaign_id: int,
        states: Sequence[RemovalState] | None = None,
    ) -> list[RemovalRecord]:
        rows, _, _ = self._removal_state()
        return sorted(
            (
                r
                for r in rows.values()
                if (r.audience, r.partition_key, r.campaign_id)
                == (audience, partition_key, campaign_id)
                and (states is None or r.state in states)
            ),
            key=lambda r: (r.person_key, r.removal_id),
        )

    def move_removal(
        self,
        removal_id: str,
        new: RemovalState,
        *,
        reason: str | None = None,
        status: StatusRow | None = None,
    ) -> bool:
        rows, _, _ = self._removal_state()
        with self._removal_lock:
            old = rows.get(removal_id)
            if old is None:
                return False
            try:
                check_removal_transition(old.state, new, removal_id)
            except IllegalTransition:
                return False
            if status is not None:
                self.upsert_statuses([status])
            bump = 1 if new is RemovalState.REMOVING else 0
            rows[removal_id] = dataclasses.replace(
                old, state=new, reason=reason, attempts=old.attempts + bump
            )
        return True
