"""The plain values of mirror membership: a recorded plan and its removals.

Values only (no I/O): they cross the ``LedgerStore`` seam (``plan_removals``, ``record_plan``,
``latest_plan``, ``move_removal``) and are what the Dagster plan, guard and removal steps read.
A plan is keyed by ``plan_id`` (the run that computed it) and by (audience, partition key,
campaignId): removal is defined per partition, as sends are (a person leaves partition P when
P added them and they are no longer among P's rows).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from ._states import RemovalState


class PlanAction(enum.StrEnum):
    """What a plan does with one person."""

    ADD = "ADD"
    """In the rows, not in the flow: the sync adds them."""
    UNCHANGED = "UNCHANGED"
    """In the rows and already in the flow."""
    REMOVE = "REMOVE"
    """Added by this audience (and partition), no longer in its rows: a DELETE is planned."""
    NOT_REMOVABLE = "NOT_REMOVABLE"
    """Would be removed, but was added with no identifier the DELETE accepts (phone, email,
    externalId): left in the flow, with that reason."""


@dataclass(frozen=True, slots=True)
class RemovalRecord:
    """One removal of one person from one flow, as the ledger keeps it.

    ``kind``/``identifier``: the one identifier the DELETE carries (``EXTERNAL_ID``, ``EMAIL``
    or ``PHONE``, from what the person was added with). ``batch_id``: the add that put them in.
    """

    removal_id: str
    audience: str
    partition_key: str
    campaign_id: int
    person_key: str
    kind: str
    identifier: str
    plan_id: str
    state: RemovalState
    batch_id: str | None = None
    reason: str | None = None
    attempts: int = 0


def removal_id_for(
    audience: str, partition_key: str, campaign_id: int, person_key: str, plan_id: str
) -> str:
    """Stable id of one planned removal (a person removed again later gets another one)."""
    text = "\x1f".join([audience, partition_key, str(campaign_id), person_key, plan_id])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class PlanSummary:
    """The counts of one recorded plan (one row of the plans table).

    Attributes:
        source_rows: Rows the source returned for this run.
        participants: People prepared from them.
        quarantined: Input rows held back.
        in_flow: People this audience (and partition) added to the flow, before the run.
        adds, unchanged, removals, not_removable: People by ``PlanAction``.
        planned_at: Epoch seconds.
    """

    plan_id: str
    audience: str
    partition_key: str
    campaign_id: int
    source_rows: int
    participants: int
    quarantined: int
    in_flow: int
    adds: int
    unchanged: int
    removals: int
    not_removable: int
    planned_at: float


@dataclass(frozen=True, slots=True)
class PlanPerson:
    """One person's line of a recorded plan; identifiers masked (the table is for reading)."""

    plan_id: str
    action: PlanAction
    person_masked: str
    kind: str | None
    identifier_masked: str | None
    reason: str | None = None
    partition_key: str = ""
