"""Deterministic batching of FlowParticipant bodies, and the cheap no-duplicate re-check.

Pure functions: no I/O. The same participants always give the same batches and batch ids, so a
re-run after a crash finds the batches it planned before. The identity layer already guarantees
that no identifier appears twice; this module checks it again (a set lookup per identifier) and
refuses to plan otherwise, because one duplicate is enough to make Infobip merge two people.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from moments_pipeline.identity import mask_identifier, rules

from ._columns import BatchMembers
from ._protocols import BatchMember

MAX_BATCH_SIZE = 1000
"""Infobip's limit on participants per add-participants request."""


class DuplicateIdentifierError(ValueError):
    """Two participants of one run share an identifier; nothing is sent.

    The message names the identifier kind, a masked hint of the value and both person keys.
    """

    def __init__(self, kind: str, identifier: str, first_person: str, second_person: str) -> None:
        self.kind = kind
        self.first_person = first_person
        self.second_person = second_person
        super().__init__(
            f"identifier {kind} {mask_identifier(identifier)} belongs to both person "
            f"{first_person!r} and person {second_person!r}; refusing to send (Infobip would "
            "merge their profiles)"
        )


@dataclass(frozen=True, slots=True)
class SyncParticipant:
    """One person to put in the flow: its stable key and its FlowParticipant body.

    ``profile_anchor`` is the identity layer's ``profile_anchor`` (the Infobip profile this
    person updates); the identity ledger records the person's identifiers under it. None means
    the person key. ``source_rows`` are the ids of the input rows folded into this person (the
    identity layer's ``source_rows``): if the engine has to refuse the person, those are the
    rows its quarantine record names (the person key when empty).
    """

    person_key: str
    body: Mapping[str, Any]
    profile_anchor: str | None = None
    source_rows: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PlannedBatch:
    """A batch ready for the outbox."""

    batch_id: str
    attempt: int
    participants: tuple[SyncParticipant, ...]
    members: Sequence[BatchMember]
    """Columnar (``BatchMembers``); reads as a sequence of ``BatchMember``."""


# The identity ledger's kind of a body's ``identifyBy``: EMAIL, PHONE or ``<TYPE>:<sender>``.
identify_by_kind = rules.identify_by_kind_of_body


def identifiers_of(body: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    """Every identifier a FlowParticipant body carries, as (kind, identifier, is_identify_by).

    Kinds follow the identity ledger: EMAIL, PHONE, EXTERNAL_ID (``person.externalId``) and
    ``<TYPE>:<sender>`` for channel identifyBy types. An identifier repeated within the same
    participant (identifyBy also listed as a contact) is listed once.
    """
    found: dict[tuple[str, str], bool] = {}
    ident = body.get("identifyBy")
    if ident:
        found[(identify_by_kind(ident), str(ident["identifier"]))] = True
    person = body.get("person") or {}
    external_id = person.get("externalId")
    if external_id:
        found.setdefault(("EXTERNAL_ID", str(external_id)), False)
    contact = person.get("contactInformation") or {}
    for email in contact.get("email") or ():
        found.setdefault(("EMAIL", str(email["address"])), False)
    for phone in contact.get("phone") or ():
        found.setdefault(("PHONE", str(phone["number"])), False)
    return [(kind, value, flag) for (kind, value), flag in found.items()]


class UniquenessGuard:
    """Checks, chunk after chunk, that no identifier belongs to two participants of a run.

    Incremental so that the engine can check each chunk right before planning it: a shared
    identifier is always found before the second of its two owners is sent, so a request never
    carries an identifier that another participant of the run already used. E-mail addresses
    are compared in the identity rules' comparable form (``rules.comparable``).
    """

    def __init__(self) -> None:
        self._owner: dict[tuple[str, str], str] = {}
        self._people: set[str] = set()

    def check(self, participants: Iterable[SyncParticipant]) -> None:
        """Add participants to the run, refusing any identifier already owned by another.

        Raises:
            DuplicateIdentifierError: on the first shared identifier.
            ValueError: when a person key appears twice or a body lacks ``identifyBy``.
        """
        claim = self._owner.setdefault
        seen_people = self._people
        comparable = rules.comparable
        EMAIL, PHONE, EXTERNAL_ID = rules.EMAIL, rules.PHONE, rules.EXTERNAL_ID
        # One flat loop: it runs over every participant of the run.
        for participant in participants:
            key = participant.person_key
            if key in seen_people:
                raise ValueError(f"person key {key!r} appears twice in the input")
            seen_people.add(key)
            body = participant.body
            ident = body.get("identifyBy")
            if not ident:
                raise ValueError(f"participant {key!r} has no identifyBy")
            kind = identify_by_kind(ident)
            value = str(ident["identifier"])
            found = [(kind, comparable(kind, value))]
            person = body.get("person")
            if person:
                external_id = person.get("externalId")
                if external_id:
                    found.append((EXTERNAL_ID, str(external_id)))
                contact = person.get("contactInformation")
                if contact:
                    found.extend(
                        (EMAIL, comparable(EMAIL, str(e["address"])))
                        for e in contact.get("email") or ()
                    )
                    found.extend((PHONE, str(ph["number"])) for ph in contact.get("phone") or ())
            for item in found:
                first = claim(item, key)
                if first != key:
                    raise DuplicateIdentifierError(item[0], item[1], first, key)


def check_unique_identifiers(participants: Iterable[SyncParticipant]) -> None:
    """Refuse participants of which two (or one person twice) share an identifier.

    Raises:
        DuplicateIdentifierError: on the first shared identifier.
        ValueError: when a person key appears twice or a body lacks ``identifyBy``.
    """
    UniquenessGuard().check(participants)


def content_hash(participants: Sequence[SyncParticipant]) -> str:
    """sha256 over the batch's person keys and canonical (key-sorted) bodies, in order."""
    canonical = orjson.dumps(
        [(p.person_key, p.body) for p in participants], option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(canonical).hexdigest()


def batch_id_for(
    audience: str, partition_key: str, campaign_id: int, content: str, attempt: int = 0
) -> str:
    """The deterministic outbox id of a batch.

    sha256(audience, partition key, campaignId, content hash). ``attempt`` > 0 is mixed in only
    when a batch with the same content already completed in this partition and is legitimately
    sent again (its REJECTED people are retried), so that the new batch gets its own id.
    """
    parts = [audience, partition_key, str(campaign_id), content]
    if attempt:
        parts.append(f"attempt={attempt}")
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def plan_batches(
    participants: Sequence[SyncParticipant],
    *,
    audience: str,
    partition_key: str,
    campaign_id: int,
    batch_size: int = MAX_BATCH_SIZE,
    taken_ids: frozenset[str] | set[str] = frozenset(),
) -> list[PlannedBatch]:
    """Cut participants (sorted by person key) into batches with deterministic ids.

    Args:
        participants: the people to send, each once.
        audience: audience name (part of the batch id).
        partition_key: partition (part of the batch id).
        campaign_id: the flow (part of the batch id).
        batch_size: at most ``MAX_BATCH_SIZE``.
        taken_ids: ids of completed batches of this partition that must not be reused.

    Raises:
        ValueError: for a batch size outside 1..1000.
    """
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}, got {batch_size}")
    ordered = sorted(participants, key=lambda p: p.person_key)
    planned: list[PlannedBatch] = []
    for start in range(0, len(ordered), batch_size):
        chunk = tuple(ordered[start : start + batch_size])
        content = content_hash(chunk)
        attempt = 0
        batch_id = batch_id_for(audience, partition_key, campaign_id, content, attempt)
        while batch_id in taken_ids:
            attempt += 1
            batch_id = batch_id_for(audience, partition_key, campaign_id, content, attempt)
        planned.append(PlannedBatch(batch_id, attempt, chunk, members_of(batch_id, chunk)))
    return planned


def members_of(batch_id: str, participants: Iterable[SyncParticipant]) -> BatchMembers:
    """The identifiers of a batch's participants, as columns (no object per identifier)."""
    members = BatchMembers([], [], [], [], [], [])
    keys, kinds, values = members.person_keys, members.kinds, members.identifiers
    flags, anchors = members.is_identify_by, members.anchors
    for p in participants:
        key, anchor = p.person_key, p.profile_anchor
        for kind, identifier, flag in identifiers_of(p.body):
            keys.append(key)
            kinds.append(kind)
            values.append(identifier)
            flags.append(flag)
            anchors.append(anchor)
    members.batch_ids.extend([batch_id] * len(keys))
    return members
