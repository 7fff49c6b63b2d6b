"""Mirror membership: the plan (adds, removals, unchanged) and the guarded, exactly-once removal.

Pure planning and an async apply over a ``Remover`` seam; no Dagster, no logging (results are
returned). Constraints:

- Only people this audience (and partition) put in the flow are removed: status ACCEPTED
  under this audience and partition key. A person another audience or tool put there
  (their status names another audience, or ours said ``REJECTED_PERSON_IN_FLOW``) is never
  touched. Removal is per partition: a person leaves partition P when P added them and they
  are no longer among P's rows.
- The DELETE carries exactly one identifier, one the person was added with: their externalId,
  else their identifyBy when it is an e-mail or a phone, else their first e-mail, then phone.
  One identifier names one profile, so a DELETE can never make Infobip merge anyone.
- Exactly once: each removal is recorded PLANNED with its plan, moved to REMOVING (durably)
  before its DELETE is issued and to REMOVED/GONE with the person's status after the answer.

Reading of the contract (``remove-people-from-flow``): the operation is an HTTP DELETE (RFC 9110
§9.2.2: idempotent) and its ExceptionResponse table documents ``40006 Person is not in the
flow``, which is exactly what a repeat answers: the emulator, true to it, answers a repeated
DELETE 400/40006 and changes nothing, and a removal sends nobody a message. So a DELETE whose
fate is unknown (timeout, 5xx, crash after issuing it) is safe to repeat: it stays REMOVING and
the next run repeats it; a 40006 (or 40402, person unknown) then ends it as GONE. It is never
held like an ambiguous send.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from moments_pipeline.config import RemovalGuardConfig
from moments_pipeline.identity import mask_anchor, mask_identifier, rules
from moments_pipeline.infobip import (
    AuthError,
    MomentsClient,
    MomentsError,
    NotFoundError,
    RemovalOutcome,
    ValidationError,
    error_summary,
)

from ._errors import SyncStoppedError
from ._membership import (
    PlanAction,
    PlanPerson,
    PlanSummary,
    RemovalRecord,
    removal_id_for,
)
from ._protocols import BatchMember, LedgerStore, StatusRow
from ._states import REMOVAL_OPEN, ParticipantStatus, RemovalState

#: Identifier kinds the DELETE accepts, with their query parameter.
REMOVABLE_KINDS = (rules.EXTERNAL_ID, rules.EMAIL, rules.PHONE)
NOT_IN_FLOW = "40006"
PERSON_NOT_FOUND = "40402"
FLOW_NOT_FOUND = "40401"
FLOW_INACTIVE = "40005"
NO_REMOVABLE_IDENTIFIER = "NO_REMOVABLE_IDENTIFIER"


# -- the plan ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MembershipPlan:
    """A computed plan: what the run adds, keeps and removes (see ``PlanAction``)."""

    summary: PlanSummary
    people: tuple[PlanPerson, ...]
    removals: tuple[RemovalRecord, ...]
    """PLANNED removals of this plan plus REMOVING ones carried over (they are repeated)."""


def _removal_identifier(members: Sequence[BatchMember]) -> tuple[str, str] | None:
    """The one identifier a DELETE carries for a person added with ``members``."""
    by_kind: dict[str, list[BatchMember]] = {}
    for m in members:
        by_kind.setdefault(m.kind, []).append(m)
    if by_kind.get(rules.EXTERNAL_ID):
        return rules.EXTERNAL_ID, by_kind[rules.EXTERNAL_ID][0].identifier
    for m in members:
        if m.is_identify_by and m.kind in (rules.EMAIL, rules.PHONE):
            return m.kind, m.identifier
    for kind in (rules.EMAIL, rules.PHONE):
        if by_kind.get(kind):
            return kind, sorted(x.identifier for x in by_kind[kind])[0]
    return None


def owned_in_flow(
    statuses: Iterable[StatusRow], audience: str, partition_key: str
) -> list[StatusRow]:
    """People this audience and partition put in the flow (their add was ACCEPTED)."""
    return [
        s
        for s in statuses
        if s.audience == audience
        and s.partition_key == partition_key
        and s.status == ParticipantStatus.ACCEPTED
    ]


def plan_membership(
    ledger: LedgerStore,
    *,
    plan_id: str,
    audience: str,
    partition_key: str,
    campaign_id: int,
    person_keys: Sequence[str],
    source_rows: int,
    quarantined: int,
    now: float | None = None,
) -> MembershipPlan:
    """Compute the plan of one run from the prepared people and the ledger (reads only)."""
    current = set(person_keys)
    statuses = ledger.statuses(campaign_id)
    owned = owned_in_flow(statuses, audience, partition_key)
    delivered = ledger.delivered_person_keys(campaign_id)
    carried = ledger.removals(audience, partition_key, campaign_id, [RemovalState.REMOVING])
    carried_keys = {r.person_key for r in carried}
    departed = sorted(
        (s for s in owned if s.person_key not in current and s.person_key not in carried_keys),
        key=lambda s: s.person_key,
    )
    batch_ids = sorted({s.batch_id for s in departed if s.batch_id})
    members: dict[str, list[BatchMember]] = {}
    for m in ledger.batch_members(batch_ids) if batch_ids else []:
        members.setdefault(m.person_key, []).append(m)
    people: list[PlanPerson] = []
    removals: list[RemovalRecord] = list(carried)
    not_removable = 0
    for s in departed:
        chosen = _removal_identifier(
            [m for m in members.get(s.person_key, []) if m.batch_id == s.batch_id]
        )
        if chosen is None:
            not_removable += 1
            people.append(
                PlanPerson(
                    plan_id,
                    PlanAction.NOT_REMOVABLE,
                    mask_anchor(s.person_key),
                    None,
                    None,
                    NO_REMOVABLE_IDENTIFIER,
                )
            )
            continue
        kind, identifier = chosen
        removals.append(
            RemovalRecord(
                removal_id=removal_id_for(
                    audience, partition_key, campaign_id, s.person_key, plan_id
                ),
                audience=audience,
                partition_key=partition_key,
                campaign_id=campaign_id,
                person_key=s.person_key,
                kind=kind,
                identifier=identifier,
                plan_id=plan_id,
                state=RemovalState.PLANNED,
                batch_id=s.batch_id,
            )
        )
    for r in removals:
        reason = "REPEAT_AFTER_UNCONFIRMED_DELETE" if r.state is RemovalState.REMOVING else None
        people.append(
            PlanPerson(
                plan_id,
                PlanAction.REMOVE,
                mask_anchor(r.person_key),
                r.kind,
                mask_identifier(r.identifier),
                reason,
            )
        )
    adds = sorted(current - delivered)
    unchanged = sorted(current & delivered)
    people += [PlanPerson(plan_id, PlanAction.ADD, mask_anchor(k), None, None) for k in adds]
    people += [
        PlanPerson(plan_id, PlanAction.UNCHANGED, mask_anchor(k), None, None) for k in unchanged
    ]
    people = [dataclasses.replace(p, partition_key=partition_key) for p in people]
    summary = PlanSummary(
        plan_id=plan_id,
        audience=audience,
        partition_key=partition_key,
        campaign_id=campaign_id,
        source_rows=source_rows,
        participants=len(current),
        quarantined=quarantined,
        in_flow=len(owned),
        adds=len(adds),
        unchanged=len(unchanged),
        removals=len(removals),
        not_removable=not_removable,
        planned_at=time.time() if now is None else now,
    )
    return MembershipPlan(summary, tuple(people), tuple(removals))


# -- the guard -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """The removal guard on one recorded plan.

    ``passed`` is True when nothing is refused, or when an operator overrode the refusals for
    this run (``overridden``); ``refusals`` say why in words, with the numbers.
    """

    passed: bool
    refusals: tuple[str, ...]
    overridden: bool
    share: float


def evaluate_guard(
    plan: PlanSummary, limits: RemovalGuardConfig, *, allow_mass_removal: bool = False
) -> GuardVerdict:
    """Refuse an empty source, or removals beyond ``max_removal_share`` or ``max_removals``.

    An empty source is refused whenever this audience has anyone in the flow (a source that
    comes back empty would remove them all); with nobody in the flow it removes nothing.
    """
    refusals: list[str] = []
    share = plan.removals / plan.in_flow if plan.in_flow else 0.0
    if plan.source_rows == 0 and (plan.in_flow or plan.removals):
        refusals.append(
            f"the source returned 0 rows while this audience has {plan.in_flow} people in the "
            f"flow: {plan.removals} removal(s) refused"
        )
    if share > limits.max_removal_share:
        refusals.append(
            f"{plan.removals} removal(s) are {share:.1%} of the {plan.in_flow} people this "
            f"audience has in the flow, above max_removal_share {limits.max_removal_share:.1%}"
        )
    if limits.max_removals is not None and plan.removals > limits.max_removals:
        refusals.append(f"{plan.removals} removal(s) exceed max_removals {limits.max_removals}")
    overridden = bool(refusals) and allow_mass_removal
    return GuardVerdict(
        passed=not refusals or overridden,
        refusals=tuple(refusals),
        overridden=overridden,
        share=round(share, 4),
    )


# -- applying removals ---------------------------------------------------------------------------


class RemovalsStoppedError(SyncStoppedError):
    """Infobip answered that no DELETE of this run can succeed (flow missing or inactive, key).

    The refused DELETE processed nothing; it and the removals not tried stay to do (PLANNED),
    and a later plan lists them again.
    """

    def __init__(self, campaign_id: int, reason: str, not_removed: int) -> None:
        self.campaign_id, self.reason, self.not_removed = campaign_id, reason, not_removed
        super().__init__(
            f"removals from flow {campaign_id} stopped ({reason}): {not_removed} removal(s) "
            "not done; nothing was removed by the refused request. Check the flow (launched, "
            "flow.campaign_id) and the API key, then run again."
        )


@dataclass(frozen=True, slots=True)
class RemovalAnswer:
    """What a remover says of one DELETE: the state it ends in and a machine-readable reason.

    ``state``: REMOVED, GONE, REFUSED, REMOVING (fate unknown: repeated later) or PLANNED with
    ``stop`` (nothing processed, and no later DELETE of the run can succeed).
    """

    state: RemovalState
    reason: str | None = None
    stop: bool = False


class Remover(Protocol):
    """Where DELETEs go (an adapter over the Moments client in production)."""

    async def remove(self, campaign_id: int, kind: str, identifier: str) -> RemovalAnswer: ...


class MomentsRemover:
    """``Remover`` over ``MomentsClient.remove_people_from_flow`` (its rate budget included).

    The client retries 429 (account-wide pause), 5xx and dropped connections itself (the DELETE
    is idempotent to it too) and reads a 40006 after an ambiguous attempt as removed.
    """

    def __init__(self, client: MomentsClient) -> None:
        self._client = client

    async def remove(self, campaign_id: int, kind: str, identifier: str) -> RemovalAnswer:
        param = {rules.EXTERNAL_ID: "external_id", rules.EMAIL: "email", rules.PHONE: "phone"}
        try:
            outcome = await self._client.remove_people_from_flow(
                campaign_id, **{param[kind]: identifier}
            )
        except AuthError as exc:
            return RemovalAnswer(RemovalState.PLANNED, error_summary(exc), stop=True)
        except (ValidationError, NotFoundError) as exc:
            code = exc.error_code
            if code in (NOT_IN_FLOW, PERSON_NOT_FOUND):
                return RemovalAnswer(RemovalState.GONE, error_summary(exc))
            if code in (FLOW_NOT_FOUND, FLOW_INACTIVE) or isinstance(exc, NotFoundError):
                return RemovalAnswer(RemovalState.PLANNED, error_summary(exc), stop=True)
            return RemovalAnswer(RemovalState.REFUSED, error_summary(exc))
        except MomentsError as exc:  # retries spent on 429/5xx/transport: fate unknown
            return RemovalAnswer(RemovalState.REMOVING, f"UNCONFIRMED:{error_summary(exc)}")
        if outcome is RemovalOutcome.ASSUMED_REMOVED:
            return RemovalAnswer(RemovalState.GONE, "ASSUMED_REMOVED_AFTER_RETRY")
        return RemovalAnswer(RemovalState.REMOVED, None)


@dataclass
class RemovalResult:
    """What one apply did (counts by end state; no identifier)."""

    planned: int = 0
    removed: int = 0
    gone: int = 0
    refused: int = 0
    unconfirmed: int = 0
    skipped: int = 0
    """Moved meanwhile by another run (the compare-and-set said no): not issued by this one."""
    reasons: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def count(self, reason: str | None) -> None:
        if reason:
            self.reasons[reason] = self.reasons.get(reason, 0) + 1


def _removed_status(r: RemovalRecord, statuses: dict[str, StatusRow]) -> StatusRow | None:
    old = statuses.get(r.person_key)
    if old is None or old.audience != r.audience or old.status != ParticipantStatus.ACCEPTED:
        return None  # re-added or taken over meanwhile: the status is not ours to change
    return StatusRow(
        campaign_id=r.campaign_id,
        person_key=r.person_key,
        audience=r.audience,
        partition_key=r.partition_key,
        batch_id=old.batch_id,
        operation_id=old.operation_id,
        status=ParticipantStatus.REMOVED.value,
        error_reason=None,
        delivered=False,
    )


async def apply_removals(
    remover: Remover,
    ledger: LedgerStore,
    removals: Sequence[RemovalRecord],
    *,
    concurrency: int = 16,
) -> RemovalResult:
    """Issue the DELETE of every open removal, each recorded before and after its request.

    Raises:
        RemovalsStoppedError: Infobip said no DELETE can succeed (after recording the rest).
    """
    started = time.monotonic()
    todo = [r for r in removals if r.state in REMOVAL_OPEN]
    result = RemovalResult(planned=len(todo))
    if not todo:
        return result
    campaign = todo[0].campaign_id
    statuses = {s.person_key: s for s in ledger.statuses(campaign, [r.person_key for r in todo])}
    gate = asyncio.Semaphore(max(1, concurrency))
    stop: list[str] = []
    db = asyncio.Lock()  # one ledger writer at a time (a DuckDB connection is not shared)

    async def one(r: RemovalRecord) -> None:
        async with gate:
            if stop:
                return
            async with db:
                marked = await asyncio.to_thread(
                    ledger.move_removal, r.removal_id, RemovalState.REMOVING, reason=r.reason
                )
            if not marked:
                result.skipped += 1
                return
            answer = await remover.remove(r.campaign_id, r.kind, r.identifier)
            if answer.stop:
                stop.append(answer.reason or "STOPPED")
            status = None
            if answer.state in (RemovalState.REMOVED, RemovalState.GONE):
                status = _removed_status(r, statuses)
            if answer.state is not RemovalState.REMOVING or answer.reason:
                async with db:
                    await asyncio.to_thread(
                        ledger.move_removal,
                        r.removal_id,
                        answer.state,
                        reason=answer.reason,
                        status=status,
                    )
            result.count(answer.reason)
            if answer.state is RemovalState.REMOVED:
                result.removed += 1
            elif answer.state is RemovalState.GONE:
                result.gone += 1
            elif answer.state is RemovalState.REFUSED:
                result.refused += 1
            elif answer.state is RemovalState.REMOVING:
                result.unconfirmed += 1

    await asyncio.gather(*(one(r) for r in todo))
    result.elapsed_s = time.monotonic() - started
    if stop:
        done = result.removed + result.gone + result.refused + result.unconfirmed
        raise RemovalsStoppedError(campaign, stop[0], result.planned - done)
    return result
