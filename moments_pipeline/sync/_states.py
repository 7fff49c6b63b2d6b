"""The states of an outbox batch and of a participant's record, and their one transition table.

Every state change the engine makes in memory and every one the ledger writes is checked here
(``check_transition`` / ``check_status_transition``); anything not in the tables raises
``IllegalTransition``. The SQL ledger also derives its compare-and-set predecessors from the
same table (``predecessors``), so a write that the table forbids never lands.

What a batch state says about Infobip (there is no idempotency key, so this is the whole
exactly-once argument):

- PLANNED, CLAIMED: the body has certainly not left. A CLAIMED batch belongs to one run
  (``claimed_by``); under the run lease, another run's claim is a dead run's and is taken over.
- SENDING: written durably after the rate slot is acquired and right before the request is
  issued; from then on the request may have reached Infobip. Found by a later run without an
  answer, it becomes HELD.
- SENT: Infobip answered with an operationId. REPORTED: the final report is stored. For a
  form submission or view (outbox scope ``form:<id>``, ``sync/_forms.py``) SENT is final: its
  ``{"status": "OK"}`` is the whole answer, no operationId or report follows.
- HELD: may have reached Infobip and nothing says whether it did; resolved by a callback or a
  report naming its operation, or by an operator's re-send.
- FAILED: refused before processing (a 4xx other than 429): nothing was queued.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class IllegalTransition(ValueError):
    """A state change that the transition table does not allow."""

    def __init__(self, kind: str, old: str | None, new: str, subject: str = "") -> None:
        self.old, self.new = old, new
        where = f" of {subject}" if subject else ""
        super().__init__(f"illegal {kind} transition{where}: {old} -> {new}")


class BatchState(enum.StrEnum):
    """Where one outbox batch stands. Stored as text in the ledger."""

    PLANNED = "PLANNED"
    """Written before anything else; the body has certainly not left."""
    CLAIMED = "CLAIMED"
    """Taken by one run (compare-and-set) to be sent; the body has not left yet."""
    SENDING = "SENDING"
    """Marked durably right before the request is issued: from then on it may have arrived."""
    SENT = "SENT"
    """Infobip answered with an operationId; the per-participant verdicts are awaited."""
    HELD = "HELD"
    """May have reached Infobip, nothing says whether it did: never re-sent unless an
    operator asks (``resend_ambiguous``)."""
    REPORTED = "REPORTED"
    """The final report is persisted: every participant is ACCEPTED or REJECTED."""
    FAILED = "FAILED"
    """Infobip refused the whole request before processing it (e.g. 400): nothing queued."""


_B = BatchState

BATCH_TRANSITIONS: frozenset[tuple[BatchState, BatchState]] = frozenset(
    {
        (_B.PLANNED, _B.CLAIMED),  # a run claims it (compare-and-set)
        (_B.CLAIMED, _B.SENDING),  # rate slot acquired: the request is issued now
        (_B.CLAIMED, _B.PLANNED),  # released unsent (run stopped, retries spent, dead claim)
        (_B.CLAIMED, _B.FAILED),  # refused before processing (the answer came back CLAIMED)
        (_B.SENDING, _B.CLAIMED),  # answered "not processed" (429, connection refused, 4xx)
        (_B.SENDING, _B.SENT),  # answered with an operationId
        (_B.SENDING, _B.HELD),  # ambiguous answer, or found SENDING after a crash
        (_B.SENDING, _B.FAILED),  # refused before processing (400, 404)
        (_B.HELD, _B.SENDING),  # an operator's re-send (the earlier send may have landed)
        (_B.HELD, _B.SENT),  # a callback or a report names its operation
        (_B.HELD, _B.HELD),  # still held, with a new reason (e.g. a refused re-send)
        (_B.SENT, _B.REPORTED),  # the final report is stored
    }
)
"""Every allowed (old, new) pair of batch states; nothing else may happen."""

MAY_HAVE_LEFT: frozenset[BatchState] = frozenset({_B.SENDING, _B.SENT, _B.HELD, _B.REPORTED})
"""States whose body may have reached Infobip: what the identity ledger is made of."""

NEVER_LEFT: frozenset[BatchState] = frozenset({_B.PLANNED, _B.CLAIMED})
"""States whose body certainly never left: a later run may plan their people again."""


def check_transition(old: BatchState, new: BatchState, subject: str = "") -> BatchState:
    """Return ``new`` if a batch may go from ``old`` to ``new``; else raise.

    Raises:
        IllegalTransition: the pair is not in ``BATCH_TRANSITIONS``.
    """
    if (old, new) not in BATCH_TRANSITIONS:
        raise IllegalTransition("batch", old.value, new.value, subject)
    return new


def predecessors(new: BatchState) -> tuple[BatchState, ...]:
    """The states a batch may come from to reach ``new`` (sorted, for SQL ``IN`` lists)."""
    return tuple(sorted((o for o, n in BATCH_TRANSITIONS if n is new), key=lambda s: s.value))


class ParticipantStatus(enum.StrEnum):
    """A participant's last known status in a flow (``StatusRow.status``)."""

    NOT_SENT = "NOT_SENT"
    """Its batch never left (run stopped before sending it)."""
    PENDING = "PENDING"
    """Sent; the report was not final by the deadline."""
    HELD = "HELD"
    """Its batch may have reached Infobip; nothing says whether it did."""
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    REMOVED = "REMOVED"
    """A mirror audience removed the person from the flow (no longer delivered: a return to
    the audience adds them again)."""


_P = ParticipantStatus
_UNSETTLED = (_P.NOT_SENT, _P.PENDING, _P.HELD, _P.REJECTED, _P.REMOVED)

STATUS_TRANSITIONS: frozenset[tuple[ParticipantStatus | None, ParticipantStatus]] = frozenset(
    {(None, new) for new in _P}  # a first record may say anything
    | {(old, new) for old in _UNSETTLED for new in _P}  # not in the flow yet: anything next
    | {(_P.ACCEPTED, _P.ACCEPTED)}  # in the flow: stays there (a late copy of the verdict)
    | {(_P.ACCEPTED, _P.REMOVED)}  # in the flow, then removed by its mirror audience
)
"""Allowed (old, new) pairs of a participant's status; ``None`` is "no record yet".

A delivered participant (ACCEPTED, or REJECTED_PERSON_IN_FLOW on a re-send) is never planned
again, so nothing may overwrite ACCEPTED with a lesser status."""


def check_status_transition(
    old: ParticipantStatus | str | None, new: ParticipantStatus | str, subject: str = ""
) -> ParticipantStatus:
    """Return ``new`` as a status if a participant may go from ``old`` to it; else raise.

    Raises:
        IllegalTransition: an unknown status, or a pair not in ``STATUS_TRANSITIONS``.
    """
    try:
        old_status = None if old is None else _P(old)
        new_status = _P(new)
    except ValueError:
        raise IllegalTransition("participant", str(old), str(new), subject) from None
    if (old_status, new_status) not in STATUS_TRANSITIONS:
        raise IllegalTransition("participant", str(old), str(new), subject)
    return new_status


class RemovalState(enum.StrEnum):
    """Where one planned removal (a DELETE of remove-people-from-flow) stands.

    The contract's reading (``sync/_removals.py``): a repeated DELETE is safe, so unlike a
    send, a removal whose fate is unknown is repeated, never held.
    """

    PLANNED = "PLANNED"
    """In a recorded plan; no DELETE issued yet."""
    REMOVING = "REMOVING"
    """Marked durably right before the DELETE: it may have reached Infobip. Found so by a later
    run (crash, or an unconfirmed answer), the DELETE is repeated."""
    REMOVED = "REMOVED"
    """Infobip answered 200: the person left the flow."""
    GONE = "GONE"
    """Infobip says the person is not (or no longer) in the flow (40006) or unknown (40402):
    the wanted end state, by an earlier attempt of ours or by someone else."""
    REFUSED = "REFUSED"
    """Infobip refused the DELETE before processing it (a 4xx other than 40006/40402): the
    person may still be in the flow; a later plan lists them again."""
    DISCARDED = "DISCARDED"
    """Planned but never issued, and superseded: a newer plan, the person is back, or the
    run stopped before it (a later plan lists them again)."""


_R = RemovalState

REMOVAL_TRANSITIONS: frozenset[tuple[RemovalState | None, RemovalState]] = frozenset(
    {
        (None, _R.PLANNED),  # recorded with its plan
        (_R.PLANNED, _R.REMOVING),  # right before the DELETE is issued
        (_R.PLANNED, _R.DISCARDED),  # superseded before anything was issued
        (_R.REMOVING, _R.REMOVING),  # repeated (crash, unconfirmed answer): safe per contract
        (_R.REMOVING, _R.REMOVED),  # 200
        (_R.REMOVING, _R.GONE),  # 40006 / 40402: not in the flow
        (_R.REMOVING, _R.REFUSED),  # a 4xx refusal of this DELETE (nothing processed)
        (_R.REMOVING, _R.PLANNED),  # the run stopped: flow missing or inactive, key refused
    }
)
"""Every allowed (old, new) pair of removal states; ``None`` is "no record yet"."""

REMOVAL_OPEN: frozenset[RemovalState] = frozenset({_R.PLANNED, _R.REMOVING})
"""Removals still to do: a run applies them (REMOVING ones are repeated)."""


def check_removal_transition(
    old: RemovalState | None, new: RemovalState, subject: str = ""
) -> RemovalState:
    """Return ``new`` if a removal may go from ``old`` to it; else raise ``IllegalTransition``."""
    if (old, new) not in REMOVAL_TRANSITIONS:
        raise IllegalTransition("removal", None if old is None else old.value, new.value, subject)
    return new


def removal_predecessors(new: RemovalState) -> tuple[RemovalState, ...]:
    """The stored states a removal may come from to reach ``new`` (for SQL ``IN`` lists)."""
    return tuple(
        sorted(
            (o for o, n in REMOVAL_TRANSITIONS if n is new and o is not None),
            key=lambda s: s.value,
        )
    )


def status_pairs_sql() -> list[str]:
    """The allowed (old, new) status pairs as ``'OLD>NEW'`` texts, for a set-based SQL check."""
    return sorted(f"{o.value}>{n.value}" for o, n in STATUS_TRANSITIONS if o is not None)


def all_batch_pairs() -> Iterable[tuple[BatchState, BatchState]]:
    """Every (old, new) pair of batch states, allowed or not (for tests and docs)."""
    return ((o, n) for o in BatchState for n in BatchState)
