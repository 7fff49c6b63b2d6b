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
    """One person to put in the flow: its stable key and its FlowParticipant body."""

    person_key: str
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PlannedBatch:
    """A batch ready for the outbox."""

    batch_id: str
    attempt: int
    participants: tuple[SyncParticipant, ...]
    members: tuple[BatchMember, ...]


def mask_identifier(identifier: str) -> str:
    """Mask the middle of an identifier (keeps at most 2 leading and 2 trailing characters)."""
    if len(identifier) <= 4:
        return "*" * len(identifier)
    return f"{identifier[:2]}{'*' * (len(identifier) - 4)}{identifier[-2:]}"


def identify_by_kind(identify_by: Mapping[str, Any]) -> str:
    """The identity ledger's kind for an ``identifyBy``: EMAIL, PHONE, or ``<TYPE>:<sender>``.

    Channel identifiers (FACEBOOK, LINE, ...) are only unique per sender, as in the identity
    layer's ``participant_identities``.
    """
    kind = str(identify_by["type"])
    if kind in ("EMAIL", "PHONE"):
        return kind
    return f"{kind}:{identify_by.get('sender')}"


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


def _comparable(kind: str, identifier: str) -> tuple[str, str]:
    # Infobip matches e-mail addresses case-insensitively: compare them folded.
    return (kind, identifier.casefold() if kind == "EMAIL" else identifier)


def check_unique_identifiers(participants: Iterable[SyncParticipant]) -> None:
    """Refuse a run in which two participants (or one person twice) share an identifier.

    Raises:
        DuplicateIdentifierError: on the first shared identifier.
        ValueError: when a person key appears twice or a body lacks ``identifyBy``.
    """
    owner: dict[tuple[str, str], str] = {}
    seen_people: set[str] = set()
    for participant in participants:
        if participant.person_key in seen_people:
            raise ValueError(f"person key {participant.person_key!r} appears twice in the input")
        seen_people.add(participant.person_key)
        if not participant.body.get("identifyBy"):
            raise ValueError(f"participant {participant.person_key!r} has no identifyBy")
        for kind, identifier, _ in identifiers_of(participant.body):
            key = _comparable(kind, identifier)
            first = owner.setdefault(key, participant.person_key)
            if first != participant.person_key:
                raise DuplicateIdentifierError(kind, identifier, first, participant.person_key)


def content_hash(participants: Sequence[SyncParticipant]) -> str:
    """sha256 over the batch's person keys and canonical (key-sorted) bodies, in order."""
    digest = hashlib.sha256()
    for participant in participants:
        digest.update(participant.person_key.encode())
        digest.update(b"\x00")
        digest.update(orjson.dumps(participant.body, option=orjson.OPT_SORT_KEYS))
        digest.update(b"\x01")
    return digest.hexdigest()


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
        members = tuple(
            BatchMember(batch_id, p.person_key, kind, identifier, flag)
            for p in chunk
            for kind, identifier, flag in identifiers_of(p.body)
        )
        planned.append(PlannedBatch(batch_id, attempt, chunk, members))
    return planned
