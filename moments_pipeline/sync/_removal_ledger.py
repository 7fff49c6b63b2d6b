"""The SQL ledger's removal and plan tables (a mixin of ``SqlLedgerStore``).

Portable between DuckDB and PostgreSQL like the rest of the ledger (plain types, ``?``
placeholders, DELETE-then-INSERT instead of a dialect's upsert). Tables, under the ledger's
prefix (``moments_sync_`` by default, so an audience's source can never read them):

- ``removals``: one row per planned removal (``RemovalRecord``), its state checked against
  ``_states.REMOVAL_TRANSITIONS`` and moved by compare-and-set (``... WHERE state IN (the
  predecessors the table allows)``, the row count checked);
- ``membership_plans``: one row per recorded plan (``PlanSummary``), kept: the plan of each run;
- ``plan_people``: each plan's people by action, identifiers masked (for reading in the
  warehouse; the DELETE's identifier is in ``removals`` only).

A removal's end (REMOVED, GONE) and the person's status (``REMOVED``, no longer delivered, so a
return adds them again) are written in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from ._membership import PlanAction, PlanPerson, PlanSummary, RemovalRecord
from ._protocols import StatusRow
from ._states import (
    IllegalTransition,
    RemovalState,
    check_removal_transition,
    removal_predecessors,
)

if TYPE_CHECKING:
    from moments_pipeline.warehouse import Warehouse

_REMOVAL_COLUMNS = (
    "removal_id, audience, partition_key, campaign_id, person_key, kind, identifier, plan_id, "
    "state, batch_id, reason, attempts"
)
_PLAN_COLUMNS = (
    "plan_id, audience, partition_key, campaign_id, source_rows, participants, quarantined, "
    "in_flow, adds, unchanged, removals, not_removable, planned_at"
)


class RemovalLedger:
    """Removal and plan methods of ``SqlLedgerStore`` (``LedgerStore``'s removal part)."""

    warehouse: Warehouse
    _prefix: str

    def upsert_statuses(self, rows: Sequence[StatusRow]) -> None:
        raise NotImplementedError  # the ledger's own (``SqlLedgerStore.upsert_statuses``)

    @property
    def removals_table(self) -> str:
        return f"{self._prefix}removals"

    @property
    def plans_table(self) -> str:
        return f"{self._prefix}membership_plans"

    @property
    def plan_people_table(self) -> str:
        return f"{self._prefix}plan_people"

    def removal_ddl(self) -> list[str]:
        """CREATE statements of the removal tables (idempotent; for ``ensure_schema``)."""
        return [
            f"""CREATE TABLE IF NOT EXISTS {self.removals_table} (
                removal_id TEXT PRIMARY KEY, audience TEXT NOT NULL,
                partition_key TEXT NOT NULL, campaign_id BIGINT NOT NULL,
                person_key TEXT NOT NULL, kind TEXT NOT NULL, identifier TEXT NOT NULL,
                plan_id TEXT NOT NULL, state TEXT NOT NULL, batch_id TEXT, reason TEXT,
                attempts INTEGER NOT NULL DEFAULT 0,
                updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)""",
            f"""CREATE TABLE IF NOT EXISTS {self.plans_table} (
                plan_id TEXT NOT NULL, audience TEXT NOT NULL, partition_key TEXT NOT NULL,
                campaign_id BIGINT NOT NULL, source_rows BIGINT NOT NULL,
                participants BIGINT NOT NULL, quarantined BIGINT NOT NULL,
                in_flow BIGINT NOT NULL, adds BIGINT NOT NULL, unchanged BIGINT NOT NULL,
                removals BIGINT NOT NULL, not_removable BIGINT NOT NULL,
                planned_at DOUBLE PRECISION NOT NULL)""",
            f"""CREATE TABLE IF NOT EXISTS {self.plan_people_table} (
                plan_id TEXT NOT NULL, partition_key TEXT NOT NULL, action TEXT NOT NULL,
                person_masked TEXT NOT NULL, kind TEXT, identifier_masked TEXT, reason TEXT)""",
            f"CREATE INDEX IF NOT EXISTS {self.removals_table}_scope "
            f"ON {self.removals_table} (audience, partition_key, campaign_id, state)",
        ]

    def removal_table_names(self) -> dict[str, str]:
        return {
            "removals": self.removals_table,
            "membership_plans": self.plans_table,
            "plan_people": self.plan_people_table,
        }

    # -- plans --------------------------------------------------------------------------------

    def record_plan(
        self,
        summary: PlanSummary,
        people: Sequence[PlanPerson],
        removals: Sequence[RemovalRecord],
    ) -> None:
        """Record a plan: its summary, its people, and its removals PLANNED, in one transaction.

        PLANNED removals of earlier plans of the same scope become DISCARDED (never issued);
        REMOVING ones stay (a later DELETE repeats them). ``removals`` may list REMOVING ones
        carried over: only the PLANNED ones are inserted.
        """
        for r in removals:
            if r.state is RemovalState.PLANNED:
                check_removal_transition(None, r.state, r.removal_id)
        new = [r for r in removals if r.state is RemovalState.PLANNED]
        wh = self.warehouse
        with wh.transaction():
            wh.execute(
                f"UPDATE {self.removals_table} SET state = ?, reason = ?, "  # noqa: S608
                "updated_at = CURRENT_TIMESTAMP WHERE audience = ? AND partition_key = ? "
                "AND campaign_id = ? AND state = ?",
                [
                    RemovalState.DISCARDED.value,
                    f"SUPERSEDED_BY_PLAN {summary.plan_id}",
                    summary.audience,
                    summary.partition_key,
                    summary.campaign_id,
                    RemovalState.PLANNED.value,
                ],
            )
            wh.write_frame(self.plans_table, pd.DataFrame([_plan_values(summary)]))
            if people:
                wh.write_frame(
                    self.plan_people_table,
                    pd.DataFrame(
                        {
                            "plan_id": [p.plan_id for p in people],
                            "partition_key": [p.partition_key for p in people],
                            "action": [p.action.value for p in people],
                            "person_masked": [p.person_masked for p in people],
                            "kind": pd.array([p.kind for p in people], dtype=object),
                            "identifier_masked": pd.array(
                                [p.identifier_masked for p in people], dtype=object
                            ),
                            "reason": pd.array([p.reason for p in people], dtype=object),
                        }
                    ),
                )
            if new:
                wh.write_frame(self.removals_table, _removal_frame(new))

    def latest_plan(self, audience: str, partition_key: str) -> PlanSummary | None:
        """The most recent plan of one (audience, partition), or None."""
        rows = self.warehouse.fetch_all(
            f"SELECT {_PLAN_COLUMNS} FROM {self.plans_table} "  # noqa: S608 - names are fixed
            "WHERE audience = ? AND partition_key = ? ORDER BY planned_at DESC LIMIT 1",
            [audience, partition_key],
        )
        if not rows:
            return None
        r = rows[0]
        counts = [int(v) for v in r[3:12]]
        return PlanSummary(
            plan_id=str(r[0]),
            audience=str(r[1]),
            partition_key=str(r[2]),
            campaign_id=counts[0],
            source_rows=counts[1],
            participants=counts[2],
            quarantined=counts[3],
            in_flow=counts[4],
            adds=counts[5],
            unchanged=counts[6],
            removals=counts[7],
            not_removable=counts[8],
            planned_at=float(r[12]),
        )

    def plan_people(
        self, plan_id: str, partition_key: str = "", limit: int | None = None
    ) -> list[PlanPerson]:
        """The people of one recorded plan of one partition (masked), in a stable order."""
        sql = (
            "SELECT plan_id, action, person_masked, kind, identifier_masked, reason, "  # noqa: S608
            f"partition_key FROM {self.plan_people_table} WHERE plan_id = ? "
            "AND partition_key = ? ORDER BY action, person_masked"
        )
        params: list[object] = [plan_id, partition_key]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [
            PlanPerson(str(r[0]), PlanAction(r[1]), str(r[2]), r[3], r[4], r[5], str(r[6]))
            for r in self.warehouse.fetch_all(sql, params)
        ]

    # -- removals -----------------------------------------------------------------------------

    def removals(
        self,
        audience: str,
        partition_key: str,
        campaign_id: int,
        states: Sequence[RemovalState] | None = None,
    ) -> list[RemovalRecord]:
        """Removals of one (audience, partition, flow), optionally in some states only."""
        sql = (
            f"SELECT {_REMOVAL_COLUMNS} FROM {self.removals_table} "  # noqa: S608
            "WHERE audience = ? AND partition_key = ? AND campaign_id = ?"
        )
        params: list[object] = [audience, partition_key, campaign_id]
        if states is not None:
            if not states:
                return []
            sql += f" AND state IN ({', '.join('?' * len(states))})"
            params += [s.value for s in states]
        rows = self.warehouse.fetch_all(sql + " ORDER BY person_key, removal_id", params)
        return [
            RemovalRecord(
                removal_id=r[0],
                audience=r[1],
                partition_key=r[2],
                campaign_id=int(r[3]),
                person_key=r[4],
                kind=r[5],
                identifier=r[6],
                plan_id=r[7],
                state=RemovalState(r[8]),
                batch_id=r[9],
                reason=r[10],
                attempts=int(r[11]),
            )
            for r in rows
        ]

    def move_removal(
        self,
        removal_id: str,
        new: RemovalState,
        *,
        reason: str | None = None,
        status: StatusRow | None = None,
    ) -> bool:
        """Move one removal to ``new`` if its stored state allows it (compare-and-set).

        REMOVING counts an attempt. ``status`` (the person's new status) is written in the
        same transaction. Returns False, writing nothing, when the stored state is not one
        ``REMOVAL_TRANSITIONS`` allows before ``new`` (gone, or moved by another run).
        """
        olds = removal_predecessors(new)
        if not olds:
            raise IllegalTransition("removal", None, new.value, removal_id)
        bump = 1 if new is RemovalState.REMOVING else 0
        wh = self.warehouse
        with wh.transaction():
            changed = wh.execute(
                f"UPDATE {self.removals_table} SET state = ?, reason = ?, "  # noqa: S608
                "attempts = attempts + ?, updated_at = CURRENT_TIMESTAMP "
                f"WHERE removal_id = ? AND state IN ({', '.join('?' * len(olds))})",
                [new.value, reason, bump, removal_id, *(o.value for o in olds)],
            )
            if changed != 1:
                return False
            if status is not None:
                self.upsert_statuses([status])
        return True


def _plan_values(s: PlanSummary) -> dict[str, object]:
    return {
        "plan_id": s.plan_id,
        "audience": s.audience,
        "partition_key": s.partition_key,
        "campaign_id": s.campaign_id,
        "source_rows": s.source_rows,
        "participants": s.participants,
        "quarantined": s.quarantined,
        "in_flow": s.in_flow,
        "adds": s.adds,
        "unchanged": s.unchanged,
        "removals": s.removals,
        "not_removable": s.not_removable,
        "planned_at": s.planned_at,
    }


def _removal_frame(rows: Sequence[RemovalRecord]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "removal_id": [r.removal_id for r in rows],
            "audience": [r.audience for r in rows],
            "partition_key": [r.partition_key for r in rows],
            "campaign_id": pd.array([r.campaign_id for r in rows], dtype="int64"),
            "person_key": [r.person_key for r in rows],
            "kind": [r.kind for r in rows],
            "identifier": [r.identifier for r in rows],
            "plan_id": [r.plan_id for r in rows],
            "state": [r.state.value for r in rows],
            "batch_id": pd.array([r.batch_id for r in rows], dtype=object),
            "reason": pd.array([r.reason for r in rows], dtype=object),
            "attempts": pd.array([r.attempts for r in rows], dtype="int64"),
        }
    )
