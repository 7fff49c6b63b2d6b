"""Columnar batch members: a batch's identifiers as a few lists instead of many small objects.

A million participants carry about three million identifiers. As ``BatchMember`` objects they
cost memory and, worse, every full cyclic-GC collection rescans them all while sends are due
(pauses of seconds at that size). ``BatchMembers`` keeps them as parallel lists of strings
(strings are invisible to the collector) and still reads as a ``Sequence[BatchMember]``, so
ledgers written against the protocol keep working; the SQL ledger reads the columns directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import overload

from ._protocols import BatchMember


class BatchMembers(Sequence[BatchMember]):
    """The identifiers of the participants of one or more batches, column by column.

    Args:
        batch_ids: batch id of each row.
        person_keys: person key of each row.
        kinds: identity ledger kind of each row (EMAIL, PHONE, EXTERNAL_ID, ``<TYPE>:<sender>``).
        identifiers: the identifier of each row.
        is_identify_by: whether the row is the participant's ``identifyBy``.
        profile_anchors: the profile each row's identifier is recorded under in the identity
            ledger (None: the person key).
    """

    __slots__ = ("anchors", "batch_ids", "identifiers", "is_identify_by", "kinds", "person_keys")

    def __init__(
        self,
        batch_ids: list[str],
        person_keys: list[str],
        kinds: list[str],
        identifiers: list[str],
        is_identify_by: list[bool],
        profile_anchors: list[str | None] | None = None,
    ) -> None:
        n = len(batch_ids)
        anchors: list[str | None] = profile_anchors if profile_anchors is not None else [None] * n
        if not n == len(person_keys) == len(kinds) == len(identifiers) == len(is_identify_by):
            raise ValueError("BatchMembers columns must have the same length")
        if len(anchors) != n:
            raise ValueError("BatchMembers columns must have the same length")
        self.batch_ids = batch_ids
        self.person_keys = person_keys
        self.kinds = kinds
        self.identifiers = identifiers
        self.is_identify_by = is_identify_by
        self.anchors = anchors

    @classmethod
    def from_members(cls, members: Iterable[BatchMember]) -> BatchMembers:
        """Columns from member objects (e.g. what a ledger's ``batch_members`` returned)."""
        if isinstance(members, BatchMembers):
            return members
        out = cls([], [], [], [], [], [])
        for m in members:
            out.batch_ids.append(m.batch_id)
            out.person_keys.append(m.person_key)
            out.kinds.append(m.kind)
            out.identifiers.append(m.identifier)
            out.is_identify_by.append(m.is_identify_by)
            out.anchors.append(m.profile_anchor)
        return out

    @classmethod
    def concat(cls, parts: Iterable[BatchMembers]) -> BatchMembers:
        """One column set holding the rows of several, in order."""
        out = cls([], [], [], [], [], [])
        for part in parts:
            out.batch_ids += part.batch_ids
            out.person_keys += part.person_keys
            out.kinds += part.kinds
            out.identifiers += part.identifiers
            out.is_identify_by += part.is_identify_by
            out.anchors += part.anchors
        return out

    def __len__(self) -> int:
        return len(self.batch_ids)

    @overload
    def __getitem__(self, index: int) -> BatchMember: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[BatchMember]: ...

    def __getitem__(self, index: int | slice) -> BatchMember | Sequence[BatchMember]:
        if isinstance(index, slice):
            return BatchMembers(
                self.batch_ids[index],
                self.person_keys[index],
                self.kinds[index],
                self.identifiers[index],
                self.is_identify_by[index],
                self.anchors[index],
            )
        return BatchMember(
            self.batch_ids[index],
            self.person_keys[index],
            self.kinds[index],
            self.identifiers[index],
            self.is_identify_by[index],
            self.anchors[index],
        )

    def __iter__(self) -> Iterator[BatchMember]:
        for row in zip(
            self.batch_ids,
            self.person_keys,
            self.kinds,
            self.identifiers,
            self.is_identify_by,
            self.anchors,
            strict=True,
        ):
            yield BatchMember(*row)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable columns

    def __repr__(self) -> str:
        return f"BatchMembers(rows={len(self)})"

    def identify_by(self) -> Iterator[tuple[str, str, str]]:
        """(person key, kind, identifier) of each participant's ``identifyBy`` row."""
        for key, kind, identifier, flag in zip(
            self.person_keys, self.kinds, self.identifiers, self.is_identify_by, strict=True
        ):
            if flag:
                yield key, kind, identifier
