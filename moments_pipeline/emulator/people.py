"""The People profile store of the emulator, applying the spec's create/update/merge rules.

The add-flow-participants description of the contract says: "If identifiers are unique, a new
profile is created. If identifiers match an existing profile, then that profile is updated. If
identifiers refer to multiple existing profiles or are not unique within the request, profiles
are merged." Identifiers are ``identifyBy`` (type + identifier, + sender for types other than
PHONE and EMAIL), ``person.externalId`` and every email and phone of
``person.contactInformation``. An ``identifyBy`` of type EMAIL and a contact email with the same
address are the same identifier (likewise PHONE and a contact phone).

Readings chosen where the contract is silent (documented here, asserted by tests):

- Emails compare case-insensitively (trimmed, lower-cased); phones compare as their digits.
- The surviving profile of a merge is the oldest one (lowest id); the absorbed profiles'
  identifiers and attributes move to it, attributes already on the survivor win, and the
  attributes of the request being applied win over both.
- "Not unique within the request": when a participant uses an identifier that an earlier
  participant of the same request (``RequestScope``) already used, the participant counts as a
  profile of its own that is merged into the matched one; the merge is recorded with reason
  ``IDENTIFIER_REPEATED_IN_REQUEST`` and a fresh absorbed profile id.

The store is O(number of identifiers) per upsert: a dict from identifier to profile id. It is
not thread-safe; the emulator uses it from one event loop.

Speed: add-participants processing feeds it 1000 participants per request at 100 requests/s,
so identifiers are plain ``(kind, value, sender)`` tuples on the hot path (``Identifier`` is a
NamedTuple with the same hash and equality, so both index the same entries), and
``upsert_api`` creates a profile for all-new identifiers without the general merge machinery:
an identifier an earlier participant of the request used is always in the index, so a
participant none of whose identifiers is indexed can be neither a match nor a repetition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "EMAIL",
    "EXTERNAL_ID",
    "IDENTIFIER_REPEATED_IN_REQUEST",
    "MULTIPLE_PROFILES_MATCHED",
    "PHONE",
    "Identifier",
    "MergeRecord",
    "PeopleStore",
    "Profile",
    "RequestScope",
]

EMAIL = "EMAIL"
PHONE = "PHONE"
EXTERNAL_ID = "EXTERNAL_ID"

MULTIPLE_PROFILES_MATCHED = "MULTIPLE_PROFILES_MATCHED"
IDENTIFIER_REPEATED_IN_REQUEST = "IDENTIFIER_REPEATED_IN_REQUEST"

_DIGITS = str.maketrans("", "", "".join(chr(c) for c in range(128) if not chr(c).isdigit()))


class Identifier(NamedTuple):
    """One identifier of a person, already normalized (a tuple: hashing stays in C).

    Build it with ``Identifier.of`` (or the ``email``/``phone``/``external_id`` helpers) so the
    value is normalized; the plain constructor trusts its arguments.

    Attributes:
        kind: ``EMAIL``, ``PHONE``, ``EXTERNAL_ID`` or another ``identifyBy`` type
            (``FACEBOOK``, ``LINE``, ``APPLE_BUSINESS_CHAT``).
        value: The normalized identifier.
        sender: Sender or application id; only meaningful for the non PHONE/EMAIL types.
    """

    kind: str
    value: str
    sender: str | None = None

    @classmethod
    def of(cls, kind: str, value: str, sender: str | None = None) -> Identifier:
        """Return the normalized identifier of ``kind`` for ``value``."""
        if kind == EMAIL:
            return cls(EMAIL, value.strip().lower())
        if kind == PHONE:
            return cls(PHONE, value.translate(_DIGITS))
        if kind == EXTERNAL_ID:
            return cls(EXTERNAL_ID, value)
        return cls(kind, value, sender)

    @classmethod
    def email(cls, address: str) -> Identifier:
        """Return the identifier of an email address."""
        return cls(EMAIL, address.strip().lower())

    @classmethod
    def phone(cls, number: str) -> Identifier:
        """Return the identifier of a phone number (its digits)."""
        return cls(PHONE, number.translate(_DIGITS))

    @classmethod
    def external_id(cls, value: str) -> Identifier:
        """Return the identifier of an ``externalId``."""
        return cls(EXTERNAL_ID, value)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (``sender`` only when set)."""
        return identifier_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Identifier:
        """Inverse of ``to_dict``."""
        return cls(data["kind"], data["value"], data.get("sender"))


#: An identifier as the hot path builds it: ``(kind, value, sender)``; equal to an Identifier.
IdentifierKey = tuple[str, str, str | None]


def identifier_dict(identifier: IdentifierKey) -> dict[str, Any]:
    """Return the JSON-ready view of an identifier tuple (``sender`` only when set)."""
    kind, value, sender = identifier
    out: dict[str, Any] = {"kind": kind, "value": value}
    if sender is not None:
        out["sender"] = sender
    return out


def _sort_key(identifier: IdentifierKey) -> tuple[str, str, str]:
    return (identifier[0], identifier[1], identifier[2] or "")


@dataclass(slots=True)
class Profile:
    """A person profile.

    Attributes:
        id: Profile id (positive, increasing with creation order).
        identifiers: Every identifier attached to the profile: a tuple while the profile is
            as created by ``upsert_api`` (smaller, cheaper), a set once it changed.
        attributes: Person attributes (spec field names: firstName, customAttributes, tags...).
        created_at: Creation time (Unix seconds).
        modified_at: Last modification time (Unix seconds).
        origin: Origin of creation (spec ``PublicIamOrigin``: API, FORMS...).
        modified_from: Origin of the last modification.
    """

    id: int
    identifiers: set[IdentifierKey] | tuple[IdentifierKey, ...]
    attributes: dict[str, Any]
    created_at: float
    modified_at: float
    origin: str
    modified_from: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready view (used by the inspection API and snapshots)."""
        ordered = sorted(self.identifiers, key=_sort_key)
        return {
            "id": self.id,
            "externalIds": [i[1] for i in ordered if i[0] == EXTERNAL_ID],
            "emails": [i[1] for i in ordered if i[0] == EMAIL],
            "phones": [i[1] for i in ordered if i[0] == PHONE],
            "identifiers": [identifier_dict(i) for i in ordered],
            "attributes": self.attributes,
            "createdAt": self.created_at,
            "modifiedAt": self.modified_at,
            "origin": self.origin,
            "modifiedFrom": self.modified_from,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Inverse of ``to_dict``."""
        return cls(
            id=int(data["id"]),
            identifiers={Identifier.from_dict(i) for i in data["identifiers"]},
            attributes=dict(data["attributes"]),
            created_at=float(data["createdAt"]),
            modified_at=float(data["modifiedAt"]),
            origin=str(data["origin"]),
            modified_from=str(data["modifiedFrom"]),
        )


@dataclass(frozen=True, slots=True)
class MergeRecord:
    """One merge of an absorbed profile into a surviving one.

    Attributes:
        surviving_profile_id: The profile that remains.
        absorbed_profile_id: The profile that ceased to exist.
        reason: ``MULTIPLE_PROFILES_MATCHED`` or ``IDENTIFIER_REPEATED_IN_REQUEST``.
        identifiers: The identifiers of the upsert that caused the merge.
        operation_id: The operation (add-participants operationId, form submission id...).
        origin: Origin of the upsert (API, FORMS...).
        at: Time of the merge (Unix seconds).
    """

    surviving_profile_id: int
    absorbed_profile_id: int
    reason: str
    identifiers: tuple[IdentifierKey, ...]
    operation_id: str | None
    origin: str
    at: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready view."""
        return {
            "survivingProfileId": self.surviving_profile_id,
            "absorbedProfileId": self.absorbed_profile_id,
            "reason": self.reason,
            "identifiers": [identifier_dict(i) for i in self.identifiers],
            "operationId": self.operation_id,
            "origin": self.origin,
            "at": self.at,
        }


@dataclass(slots=True)
class RequestScope:
    """Identifiers already used by earlier participants of one request.

    Attributes:
        key: Stable key of the request (journal replay recreates scopes by key).
        calls: Number of upserts made in this scope so far.
    """

    key: str
    calls: int = 0
    # Identifier lists of new people, folded into ``_seen`` only when a lookup needs it: a
    # request of all-new people (the common case) never builds the set.
    _fresh: list[list[IdentifierKey]] = field(default_factory=list)
    _seen: set[IdentifierKey] = field(default_factory=set)

    @property
    def seen(self) -> set[IdentifierKey]:
        """Identifiers the request's upserts used so far."""
        fresh = self._fresh
        if fresh:
            seen = self._seen
            for ids in fresh:
                seen.update(ids)
            fresh.clear()
        return self._seen


UpsertJournal = Callable[[dict[str, Any]], None]
MergeListener = Callable[[int, int], None]


class PeopleStore:
    """Profiles indexed by identifier, with the spec's create/update/merge rules.

    Args:
        now: Callable returning the current time (Unix seconds); the emulator's clock.
        journal: Called with a JSON-ready record of every upsert (for the state journal).
    """

    def __init__(self, now: Callable[[], float], journal: UpsertJournal | None = None) -> None:
        self._now = now
        self.journal = journal
        self.profiles: dict[int, Profile] = {}
        self.index: dict[IdentifierKey, int] = {}
        self.merges: list[MergeRecord] = []
        self.aliases: dict[int, int] = {}
        self._next_id = 1
        self._merge_listeners: list[MergeListener] = []
        self._scopes: dict[str, RequestScope] = {}

    # -- queries -----------------------------------------------------------------------------

    def now(self) -> float:
        """Return the store's current time (the emulator's clock)."""
        return self._now()

    def find(self, identifier: IdentifierKey) -> int | None:
        """Return the id of the profile holding ``identifier``, if any."""
        return self.index.get(identifier)

    def get(self, profile_id: int) -> Profile | None:
        """Return the live profile ``profile_id`` (following merges), if any."""
        return self.profiles.get(self.resolve(profile_id))

    def resolve(self, profile_id: int) -> int:
        """Return the id that ``profile_id`` lives on after any merges."""
        while profile_id in self.aliases:
            profile_id = self.aliases[profile_id]
        return profile_id

    def add_merge_listener(self, listener: MergeListener) -> None:
        """Call ``listener(surviving_id, absorbed_id)`` after every merge."""
        self._merge_listeners.append(listener)

    def request_scope(self, key: str) -> RequestScope:
        """Return the scope of the request ``key`` (created on first use)."""
        scope = self._scopes.get(key)
        if scope is None:
            scope = self._scopes[key] = RequestScope(key)
        return scope

    def end_scope(self, key: str) -> None:
        """Forget the scope of a finished request."""
        self._scopes.pop(key, None)

    # -- the rule ----------------------------------------------------------------------------

    def upsert(
        self,
        identifiers: Iterable[IdentifierKey],
        attributes: Mapping[str, Any] | None = None,
        *,
        origin: str,
        operation_id: str | None,
        scope: RequestScope | None = None,
        at: float | None = None,
    ) -> int:
        """Create, update or merge profiles for one person and return the surviving id.

        Args:
            identifiers: The person's identifiers (normalized ``Identifier`` values; repeats
                within this call are the same identifier, not a repetition).
            attributes: Person attributes to apply (partial update: given keys overwrite,
                ``customAttributes`` merge per key, ``tags`` are united).
            origin: Origin recorded on the profile and the merges (``API``, ``FORMS``...).
            operation_id: Operation recorded on merges.
            scope: The request this person belongs to, to detect identifiers repeated
                within one request.
            at: Time of the change (None: the store's clock; a journal replay passes the
                original time).

        Returns:
            The id of the created, updated or surviving profile.

        Raises:
            ValueError: If ``identifiers`` is empty.
        """
        ids = list(dict.fromkeys(identifiers))
        if not ids:
            raise ValueError("a person needs at least one identifier")
        attrs = dict(attributes or {})
        now = self._now() if at is None else at
        if self.journal is not None:
            self.journal(
                {
                    "ids": [[kind, value, sender] for kind, value, sender in ids],
                    "attrs": attrs,
                    "origin": origin,
                    "op": operation_id,
                    "scope": scope.key if scope is not None else None,
                    "at": now,
                }
            )
        return self._apply(ids, attrs, origin, operation_id, scope, now)

    def upsert_api(
        self,
        ids: list[IdentifierKey],
        attrs: dict[str, Any],
        *,
        operation_id: str,
        scope: RequestScope,
        at: float,
    ) -> int:
        """``upsert`` of one add-participants participant (origin API), fast for new people.

        Same rules and result as ``upsert``; ``ids`` must be non-empty and normalized, and
        ``attrs`` a dict the store may keep (the caller built it for this call).
        """
        if self.journal is not None:
            return self.upsert(
                ids, attrs, origin="API", operation_id=operation_id, scope=scope, at=at
            )
        n = len(ids)
        # Pairwise checks are cheaper than deduplicating the usual two or three identifiers.
        if n > 1 and (
            n > 3 or ids[0] == ids[1] or (n == 3 and (ids[0] == ids[2] or ids[1] == ids[2]))
        ):
            ids = list(dict.fromkeys(ids))
        index = self.index
        for ident in ids:
            if ident in index:
                return self._apply(ids, attrs, "API", operation_id, scope, at)
        # None is indexed: no match, and no repetition (whatever the scope saw is indexed).
        pid = self._next_id
        self._next_id = pid + 1
        if "customAttributes" in attrs or "tags" in attrs:
            fresh: dict[str, Any] = {}
            _merge_attributes(fresh, attrs, incoming_wins=True)
            attrs = fresh
        self.profiles[pid] = Profile(pid, tuple(ids), attrs, at, at, "API", "API")
        for ident in ids:
            index[ident] = pid
        scope.calls += 1
        scope._fresh.append(ids)
        return pid

    def replay_upsert(self, record: Mapping[str, Any]) -> int:
        """Re-apply a journal record written by ``upsert`` (no journaling)."""
        ids: list[IdentifierKey] = [(k, v, s) for k, v, s in record["ids"]]
        scope_key = record.get("scope")
        scope = self.request_scope(scope_key) if scope_key is not None else None
        return self._apply(
            ids, dict(record["attrs"]), record["origin"], record["op"], scope, float(record["at"])
        )

    def _apply(
        self,
        ids: list[IdentifierKey],
        attrs: dict[str, Any],
        origin: str,
        operation_id: str | None,
        scope: RequestScope | None,
        now: float,
    ) -> int:
        index = self.index
        matched: list[int] = []
        repeated = False
        by_new_identifier: set[int] = set()  # profiles matched by an identifier not repeated
        seen = scope.seen if scope is not None else None
        for ident in ids:
            pid = index.get(ident)
            if pid is not None:
                if pid not in matched:
                    matched.append(pid)
                # Only an indexed identifier can have been used earlier in the request.
                if seen is not None and ident in seen:
                    repeated = True
                else:
                    by_new_identifier.add(pid)
        if scope is not None:
            scope.calls += 1
            scope.seen.update(ids)  # after the lookups above: ``seen`` is as before this call

        if not matched:
            return self._create(ids, attrs, origin, now).id

        survivor = self.profiles[min(matched)]
        absorbed_ids = sorted(p for p in matched if p != survivor.id)
        if repeated and not absorbed_ids:
            # The participant collides with an earlier one of the same request: it counts as a
            # profile of its own that is merged into the matched one.
            fresh = self._create([], {}, origin, now).id
            self._absorb(
                survivor,
                fresh,
                IDENTIFIER_REPEATED_IN_REQUEST,
                tuple(ids),
                operation_id,
                origin,
                now,
            )
        for absorbed_id in absorbed_ids:
            # A merge that an identifier new to this request takes part in (on either side)
            # is a person matching several existing profiles; only a merge of profiles both
            # reached through identifiers already used in the request is due to repetition.
            reason = (
                MULTIPLE_PROFILES_MATCHED
                if survivor.id in by_new_identifier or absorbed_id in by_new_identifier
                else IDENTIFIER_REPEATED_IN_REQUEST
            )
            self._absorb(survivor, absorbed_id, reason, tuple(ids), operation_id, origin, now)
        self._attach(survivor, ids, attrs, origin, now)
        return survivor.id

    def _create(
        self, ids: list[IdentifierKey], attrs: dict[str, Any], origin: str, now: float
    ) -> Profile:
        profile = Profile(self._next_id, set(), {}, now, now, origin, origin)
        self._next_id += 1
        self.profiles[profile.id] = profile
        self._attach(profile, ids, attrs, origin, now)
        return profile

    def _attach(
        self,
        profile: Profile,
        ids: list[IdentifierKey],
        attrs: dict[str, Any],
        origin: str,
        now: float,
    ) -> None:
        index = self.index
        pid = profile.id
        for ident in ids:
            index[ident] = pid
        _identifier_set(profile).update(ids)
        if attrs:
            _merge_attributes(profile.attributes, attrs, incoming_wins=True)
        profile.modified_at = now
        profile.modified_from = origin

    def _absorb(
        self,
        survivor: Profile,
        absorbed_id: int,
        reason: str,
        ids: tuple[IdentifierKey, ...],
        operation_id: str | None,
        origin: str,
        now: float,
    ) -> None:
        absorbed = self.profiles.pop(absorbed_id)
        for ident in absorbed.identifiers:
            self.index[ident] = survivor.id
        _identifier_set(survivor).update(absorbed.identifiers)
        _merge_attributes(survivor.attributes, absorbed.attributes, incoming_wins=False)
        self.aliases[absorbed_id] = survivor.id
        self.merges.append(
            MergeRecord(survivor.id, absorbed_id, reason, ids, operation_id, origin, now)
        )
        for listener in self._merge_listeners:
            listener(survivor.id, absorbed_id)

    # -- state -------------------------------------------------------------------------------

    def clear(self) -> None:
        """Drop every profile, merge and alias."""
        self.profiles.clear()
        self.index.clear()
        self.merges.clear()
        self.aliases.clear()
        self._scopes.clear()
        self._next_id = 1

    def snapshot(self) -> dict[str, Any]:
        """Return the whole store as JSON-ready data."""
        return {
            "next_id": self._next_id,
            "profiles": [p.to_dict() for p in self.profiles.values()],
            "merges": [m.to_dict() for m in self.merges],
            "aliases": [[a, s] for a, s in self.aliases.items()],
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Replace the store's content with a ``snapshot``."""
        self.clear()
        self._next_id = int(data["next_id"])
        for raw in data["profiles"]:
            profile = Profile.from_dict(raw)
            self.profiles[profile.id] = profile
            for ident in profile.identifiers:
                self.index[ident] = profile.id
        for raw in data["merges"]:
            self.merges.append(
                MergeRecord(
                    raw["survivingProfileId"],
                    raw["absorbedProfileId"],
                    raw["reason"],
                    tuple(Identifier.from_dict(i) for i in raw["identifiers"]),
                    raw["operationId"],
                    raw["origin"],
                    raw["at"],
                )
            )
        self.aliases = {int(a): int(s) for a, s in data["aliases"]}


def _identifier_set(profile: Profile) -> set[IdentifierKey]:
    """Return the profile's identifiers as a set, turning a creation tuple into one."""
    identifiers = profile.identifiers
    if isinstance(identifiers, tuple):
        identifiers = profile.identifiers = set(identifiers)
    return identifiers


def _merge_attributes(
    target: dict[str, Any], source: Mapping[str, Any], *, incoming_wins: bool
) -> None:
    for key, value in source.items():
        if key == "customAttributes" and isinstance(value, Mapping):
            current = target.setdefault("customAttributes", {})
            for attr, attr_value in value.items():
                if incoming_wins or attr not in current:
                    current[attr] = attr_value
        elif key == "tags" and isinstance(value, list):
            current_tags = target.setdefault("tags", [])
            current_tags.extend(t for t in value if t not in current_tags)
        elif incoming_wins or key not in target:
            target[key] = value
