"""Flows, add-participants operations and their asynchronous processing.

Request validation is plain code over orjson-parsed dicts (no per-participant pydantic model)
so that a 1000-participant request costs little; processing runs later (``Emulator``
decides when) and applies the People rules through ``PeopleStore``.

Readings of the contract made here:

- Validation messages follow the spec's examples; for fields the examples do not cover the
  same wording is used (``Field participants.[i].identifyBy.identifier must not be null``).
  JSON that is not the documented shape (a list where an object is expected...) is a body
  the server "failed to read": the problem object, as for unparsable JSON.
- ``sender`` is documented as required for types other than PHONE/EMAIL, but the spec's own
  example sends a FACEBOOK participant without one; the emulator accepts it.
- A contact is invalid (``REJECTED_INVALID_CONTACT``) when an email lacks ``local@domain.tld``
  syntax or exceeds 255 characters, or a phone is not international digits (no ``+``, no
  leading 0, 7 to 15 digits), the form the spec's examples use.
- The rejection reason for a person already in a flow without re-entry is the enum value
  ``REJECTED_PERSON_IN_FLOW`` (the description spells it ``..._ALREADY_IN_FLOW``).
- One credit is spent per accepted participant when a balance is configured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from .people import EMAIL, EXTERNAL_ID, PHONE, Identifier, IdentifierKey, PeopleStore
from .settings import FlowConfig

__all__ = [
    "IDENTIFY_BY_TYPES",
    "MAX_PARTICIPANTS",
    "AddRequest",
    "FlowState",
    "Operation",
    "ParticipantRun",
    "ProcessOutcome",
    "RequestInvalid",
    "parse_add_request",
    "process_participants",
]

MAX_PARTICIPANTS = 1000
IDENTIFY_BY_TYPES = frozenset({"EMAIL", "PHONE", "FACEBOOK", "LINE", "APPLE_BUSINESS_CHAT"})
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+$")
_PHONE_RE = re.compile(r"^[1-9][0-9]{6,14}$")
_NOT_ATTRIBUTES = frozenset({"contactInformation", "externalId"})


@dataclass(slots=True)
class FlowState:
    """A flow and the profiles currently in it."""

    config: FlowConfig
    members: set[int] = field(default_factory=set)


@dataclass(slots=True)
class Operation:
    """One add-flow-participants operation.

    The outcome is kept compact (one verdict per participant) and the report's result
    objects are built when asked: at 100 requests/s of 1000 participants, a dict per
    participant kept for 30 days was most of the emulator's memory and allocation churn.

    Attributes:
        operation_id: The operationId returned to the client.
        campaign_id: The flow.
        participants: Raw participants as sent (emptied once processed).
        notify_url: Where to POST the report once processed.
        callback_data: Echoed in the report.
        created_at: Acceptance time.
        due_at: Time from which it may be processed.
        verdicts: Once processed, per participant None (ACCEPTED) or its rejection reason.
        identify_by: Each participant's identifyBy as sent (echoed in reports).
    """

    operation_id: str
    campaign_id: int
    participants: list[dict[str, Any]]
    notify_url: str | None
    callback_data: str | None
    created_at: float
    due_at: float
    verdicts: list[str | None] | None = None
    identify_by: list[Any] = field(default_factory=list)

    @property
    def results(self) -> list[dict[str, Any]] | None:
        """AddFlowParticipantResult dicts once processed (None while pending)."""
        if self.verdicts is None:
            return None
        return _result_dicts(self.identify_by, self.verdicts)

    def set_results(self, results: list[dict[str, Any]]) -> None:
        """Set the outcome from AddFlowParticipantResult dicts (snapshots, old journals)."""
        self.identify_by = [r["identifyBy"] for r in results]
        self.verdicts = [
            r.get("errorReason") if r["status"] != "ACCEPTED" else None for r in results
        ]

    def report(self) -> dict[str, Any]:
        """Return the FlowParticipantsReportResponse body."""
        participants = self.results
        if participants is None:
            participants = [{"identifyBy": ib, "status": "PENDING"} for ib in self.identify_by]
        body: dict[str, Any] = {
            "operationId": self.operation_id,
            "campaignId": self.campaign_id,
            "participants": participants,
        }
        if self.callback_data is not None:
            body["callbackData"] = self.callback_data
        return body

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready data for snapshots."""
        return {
            "op": self.operation_id,
            "campaign": self.campaign_id,
            "participants": self.participants,
            "notify": self.notify_url,
            "cb": self.callback_data,
            "at": self.created_at,
            "due": self.due_at,
            "results": self.results,
            "identify_by": self.identify_by,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Operation:
        """Inverse of ``to_dict``."""
        op = cls(
            data["op"],
            int(data["campaign"]),
            data["participants"],
            data["notify"],
            data["cb"],
            float(data["at"]),
            float(data["due"]),
            identify_by=data["identify_by"],
        )
        if data["results"] is not None:
            op.set_results(data["results"])
        return op


def _result_dicts(identify_by: list[Any], verdicts: list[str | None]) -> list[dict[str, Any]]:
    return [
        {"identifyBy": ib, "status": "ACCEPTED"}
        if reason is None
        else {"identifyBy": ib, "status": "REJECTED", "errorReason": reason}
        for ib, reason in zip(identify_by, verdicts, strict=True)
    ]


class RequestInvalid(Exception):
    """The add request is invalid.

    Attributes:
        message: The ``errorMessage`` (None: the body could not be read at all).
    """

    def __init__(self, message: str | None) -> None:
        super().__init__(message or "Failed to read request")
        self.message = message


@dataclass(frozen=True, slots=True)
class AddRequest:
    """A validated add-flow-participants body."""

    participants: list[dict[str, Any]]
    notify_url: str | None
    callback_data: str | None


def _unreadable() -> RequestInvalid:
    return RequestInvalid(None)


def parse_add_request(body: bytes) -> AddRequest:
    """Parse and validate an add-flow-participants body.

    Raises:
        RequestInvalid: With the spec's message, or ``message=None`` for an unreadable body.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _unreadable() from None
    if not isinstance(data, dict):
        raise _unreadable()
    participants = data.get("participants")
    if participants is None:
        raise RequestInvalid("Mandatory fields are absent: [participants]")
    if not isinstance(participants, list):
        raise _unreadable()
    if not 1 <= len(participants) <= MAX_PARTICIPANTS:
        raise RequestInvalid(
            f"Number of participants must be between 1 and {MAX_PARTICIPANTS}. "
            f"Received: {len(participants)}"
        )
    notify_url = data.get("notifyUrl")
    callback_data = data.get("callbackData")
    if notify_url is not None and not isinstance(notify_url, str):
        raise _unreadable()
    if callback_data is not None and not isinstance(callback_data, str):
        raise _unreadable()
    if notify_url is not None and len(notify_url) > 1000:
        raise RequestInvalid("Field notifyUrl size must be between 0 and 1000")
    if callback_data is not None and len(callback_data) > 2000:
        raise RequestInvalid("Field callbackData size must be between 0 and 2000")
    for i, participant in enumerate(participants):
        _check_participant(i, participant)
    return AddRequest(participants, notify_url, callback_data)


def _check_participant(i: int, participant: Any) -> None:
    if not isinstance(participant, dict):
        raise _unreadable()
    identify_by = participant.get("identifyBy")
    if identify_by is None:
        raise RequestInvalid(f"Field participants.[{i}].identifyBy must not be null")
    if not isinstance(identify_by, dict):
        raise _unreadable()
    if identify_by.get("type") not in IDENTIFY_BY_TYPES:
        raise RequestInvalid(
            f"Field participants.[{i}].identifyBy.type must not be null or unsupported value"
        )
    identifier = identify_by.get("identifier")
    if not isinstance(identifier, str) or not identifier:
        if identifier is not None and not isinstance(identifier, str):
            raise _unreadable()
        raise RequestInvalid(f"Field participants.[{i}].identifyBy.identifier must not be null")
    sender = identify_by.get("sender")
    variables = participant.get("variables")
    person = participant.get("person")
    if (
        (sender is not None and not isinstance(sender, str))
        or (variables is not None and not isinstance(variables, dict))
        or (person is not None and not _person_readable(person))
    ):
        raise _unreadable()


def _person_readable(person: Any) -> bool:
    if not isinstance(person, dict):
        return False
    external_id = person.get("externalId")
    if external_id is not None and not isinstance(external_id, str):
        return False
    custom = person.get("customAttributes")
    if custom is not None and not isinstance(custom, dict):
        return False
    contacts = person.get("contactInformation")
    if contacts is None:
        return True
    if not isinstance(contacts, dict):
        return False
    for key, inner in (("email", "address"), ("phone", "number")):
        entries = contacts.get(key)
        if entries is None:
            continue
        if not isinstance(entries, list):
            return False
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get(inner, ""), str):
                return False
    return True


@dataclass(slots=True)
class ProcessOutcome:
    """What processing one operation did."""

    results: list[dict[str, Any]]
    added_members: list[int]
    credits_used: int


def _valid_email(address: str) -> bool:
    return len(address) <= 255 and _EMAIL_RE.match(address.strip()) is not None


class ParticipantRun:
    """The processing of one operation, resumable in slices of participants.

    A slice applies the People rules and the flow entry to the next participants; the
    operation's ``verdicts`` are set when the last slice ran. Slicing lets the emulator's event
    loop answer requests between slices of a 1000-participant operation.

    Args:
        operation: The pending operation.
        flow: Its flow (None or inactive: every participant REJECTED_FLOW_ERROR_UNKNOWN).
        people: The profile store.
        custom_attributes: Custom attribute names defined for the account.
    """

    __slots__ = (
        "added",
        "custom_attributes",
        "flow",
        "operation",
        "people",
        "position",
        "scope",
        "used",
        "verdicts",
    )

    def __init__(
        self,
        operation: Operation,
        flow: FlowState | None,
        people: PeopleStore,
        *,
        custom_attributes: frozenset[str],
    ) -> None:
        self.operation = operation
        self.flow = flow
        self.people = people
        self.custom_attributes = custom_attributes
        self.position = 0
        self.verdicts: list[str | None] = []
        self.added: list[int] = []
        self.used = 0
        self.scope = people.request_scope(operation.operation_id)

    @property
    def results(self) -> list[dict[str, Any]]:
        """AddFlowParticipantResult dicts of the participants processed so far."""
        processed = self.operation.participants[: len(self.verdicts)]
        return _result_dicts([p["identifyBy"] for p in processed], self.verdicts)

    @property
    def done(self) -> bool:
        """True once every participant was processed."""
        return self.position >= len(self.operation.participants)

    def step(self, limit: int, *, credits_left: int | None, now: float | None = None) -> int:
        """Process up to ``limit`` more participants; return the credits this slice spent.

        The loop is the emulator's hot path (100 requests/s of 1000 participants): the
        identifiers are extracted inline as plain tuples (``_identifiers`` is the readable
        reference of the same rules; a test holds them equal) and new people go through
        ``PeopleStore.upsert_api``.

        Args:
            limit: Most participants to process in this slice.
            credits_left: Credits remaining before this slice (None: unlimited).
            now: Time of the People changes (None: the store's clock).
        """
        op = self.operation
        op_id = op.operation_id
        people = self.people
        at = people.now() if now is None else now
        upsert = people.upsert_api
        scope = self.scope
        flow = self.flow
        append_verdict = self.verdicts.append
        added = self.added
        custom_attributes = self.custom_attributes
        members = flow.members if flow is not None else set()
        usable = flow is not None and flow.config.active
        reentry = flow is not None and flow.config.allow_reentry
        email_ok = _EMAIL_RE.match
        phone_ok = _PHONE_RE.match
        not_attributes = _NOT_ATTRIBUTES
        used = 0
        end = min(self.position + limit, len(op.participants))
        for participant in op.participants[self.position : end]:
            identify_by = participant["identifyBy"]
            if not usable:
                append_verdict("REJECTED_FLOW_ERROR_UNKNOWN")
                continue
            # -- identifiers (the rules of ``_identifiers``, inlined) --
            kind = identify_by["type"]
            value = identify_by["identifier"]
            if kind == EMAIL:
                value = value.strip()
                if len(identify_by["identifier"]) > 255 or email_ok(value) is None:
                    append_verdict("REJECTED_INVALID_CONTACT")
                    continue
                ids: list[IdentifierKey] = [(EMAIL, value.lower(), None)]
            elif kind == PHONE:
                if phone_ok(value) is None:
                    append_verdict("REJECTED_INVALID_CONTACT")
                    continue
                ids = [(PHONE, value, None)]
            else:
                ids = [(kind, value, identify_by.get("sender"))]
            person = participant.get("person")
            if person:
                invalid = False
                external_id = person.get("externalId")
                if external_id:
                    ids.append((EXTERNAL_ID, external_id, None))
                contacts = person.get("contactInformation")
                if contacts:
                    for entry in contacts.get("email") or ():
                        address = entry.get("address")
                        if address is None:
                            continue
                        stripped = address.strip()
                        if len(address) > 255 or email_ok(stripped) is None:
                            invalid = True
                            break
                        ids.append((EMAIL, stripped.lower(), None))
                    if not invalid:
                        for entry in contacts.get("phone") or ():
                            number = entry.get("number")
                            if number is None:
                                continue
                            if phone_ok(number) is None:
                                invalid = True
                                break
                            ids.append((PHONE, number, None))
                if invalid:
                    append_verdict("REJECTED_INVALID_CONTACT")
                    continue
                custom = person.get("customAttributes")
                if custom and any(name not in custom_attributes for name in custom):
                    append_verdict("REJECTED_ATTRIBUTE_MISSED")
                    continue
                attrs = {k: v for k, v in person.items() if k not in not_attributes}
            else:
                attrs = {}
            profile_id = upsert(ids, attrs, operation_id=op_id, scope=scope, at=at)
            if profile_id in members and not reentry:
                append_verdict("REJECTED_PERSON_IN_FLOW")
            elif credits_left is not None and used >= credits_left:
                append_verdict("REJECTED_NOT_ENOUGH_CREDITS")
            else:
                members.add(profile_id)
                added.append(profile_id)
                used += 1
                append_verdict(None)
        self.position = end
        self.used += used
        if self.done:
            people.end_scope(op_id)
        return used


def process_participants(
    operation: Operation,
    flow: FlowState | None,
    people: PeopleStore,
    *,
    custom_attributes: frozenset[str],
    credits_left: int | None,
) -> ProcessOutcome:
    """Apply an operation's participants in one go: People rules, then flow entry.

    Args:
        operation: The pending operation.
        flow: Its flow (None or inactive: every participant REJECTED_FLOW_ERROR_UNKNOWN).
        people: The profile store.
        custom_attributes: Custom attribute names defined for the account.
        credits_left: Remaining credits (None: unlimited).
    """
    run = ParticipantRun(operation, flow, people, custom_attributes=custom_attributes)
    run.step(len(operation.participants), credits_left=credits_left)
    if not operation.participants:
        people.end_scope(operation.operation_id)
    return ProcessOutcome(run.results, run.added, run.used)


def _identifiers(participant: dict[str, Any]) -> list[Identifier] | None:
    """Return the participant's identifiers, or None when a contact is malformed."""
    identify_by = participant["identifyBy"]
    kind = identify_by["type"]
    value = identify_by["identifier"]
    ids: list[Identifier] = []
    if kind == EMAIL:
        if not _valid_email(value):
            return None
        ids.append(Identifier.email(value))
    elif kind == PHONE:
        if _PHONE_RE.match(value) is None:
            return None
        ids.append(Identifier(PHONE, value))
    else:
        ids.append(Identifier(kind, value, identify_by.get("sender")))
    person = participant.get("person")
    if not person:
        return ids
    external_id = person.get("externalId")
    if external_id:
        ids.append(Identifier(EXTERNAL_ID, external_id))
    contacts = person.get("contactInformation")
    if contacts:
        for entry in contacts.get("email") or ():
            address = entry.get("address")
            if address is None:
                continue
            if not _valid_email(address):
                return None
            ids.append(Identifier.email(address))
        for entry in contacts.get("phone") or ():
            number = entry.get("number")
            if number is None:
                continue
            if _PHONE_RE.match(number) is None:
                return None
            ids.append(Identifier(PHONE, number))
    return ids
