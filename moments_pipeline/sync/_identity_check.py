"""The identity ledger re-checked right before planning, inside the run lease.

Preparation (the identity layer) already refuses a person whose identifiers touch several
earlier profiles, but it reads the ledger when the audience is *prepared*. Several audiences
prepared before any of them syncs (one Dagster run materializing them all) each see the ledger
as it was before the others sent, so audience B can carry a person that now points at two
profiles audience A has just created. Infobip would merge them. The engine therefore reads the
ledger again, under the lease (no other run sends meanwhile), with the identity layer's rules
(``moments_pipeline.identity.rules``: kinds, comparable form, profiles, anchors, externalIds):

- profiles: ``rules.ledger_profiles`` of the ledger's (kind, identifier, key) rows, the same
  grouping preparation uses (``identity/_prior_profiles``);
- a participant whose identifiers touch two or more profiles: ``WOULD_MERGE_PRIOR_PROFILES``;
- one profile holding an externalId other than the participant's own:
  ``IDENTIFIER_SENT_FOR_OTHER_PERSON``;
- otherwise the participant is recorded under that profile's anchor (none touched: as is).

``tests/sync/test_identity_rules_agree.py`` runs the same cases through both checks. Pure: no
I/O. The ledger's profiles are computed vectorized; each participant is then one dict lookup
per identifier, on the same pass that already reads every body.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from moments_pipeline.identity import mask_anchor, mask_identifier, rules

from ._batching import SyncParticipant, identifiers_of

WOULD_MERGE_PRIOR_PROFILES = "WOULD_MERGE_PRIOR_PROFILES"
IDENTIFIER_SENT_FOR_OTHER_PERSON = "IDENTIFIER_SENT_FOR_OTHER_PERSON"
_DETAIL_LIMIT = 5


@dataclass(frozen=True)
class PriorProfiles:
    """The identity ledger grouped into profiles (``rules.ledger_profiles``), as dicts.

    Attributes:
        profile_of: (kind, comparable identifier) -> profile number.
        anchors: anchor (smallest person key) of each profile number.
        external_ids: externalIds each profile holds, each once (only profiles holding any).
    """

    profile_of: dict[tuple[str, str], int]
    anchors: list[str]
    external_ids: dict[int, tuple[str, ...]]

    @property
    def empty(self) -> bool:
        """True when nothing was ever sent."""
        return not self.profile_of


def load_prior_profiles(rows: Sequence[tuple[str, str, str]]) -> PriorProfiles:
    """Group the ledger's ``sent_identities()`` rows (kind, identifier, key) into profiles."""
    if not rows:
        return PriorProfiles({}, [], {})
    kinds, identifiers, keys = zip(*rows, strict=True)
    grouped = rules.ledger_profiles(kinds, identifiers, keys)
    # One dict lookup per identifier of each participant, built from the shared grouping.
    lookup = dict(
        zip(
            zip(grouped.kinds.tolist(), grouped.identifiers.tolist(), strict=True),
            grouped.profiles.tolist(),
            strict=True,
        )
    )
    # Tuples, not sets: almost every profile holds one externalId, and there may be millions.
    holders, held = grouped.external_profiles, grouped.external_ids
    alone = np.bincount(holders)[holders] == 1
    external: dict[int, tuple[str, ...]] = dict(
        zip(holders[alone].tolist(), zip(held[alone].tolist()), strict=True)
    )
    for profile, external_id in zip(holders[~alone].tolist(), held[~alone].tolist(), strict=True):
        external[profile] = (*external.get(profile, ()), external_id)
    return PriorProfiles(lookup, grouped.anchors, external)


@dataclass(frozen=True, slots=True)
class RefusedParticipant:
    """A prepared participant the engine refused to send, and why.

    Attributes:
        participant: the participant as handed to the engine.
        reason: ``WOULD_MERGE_PRIOR_PROFILES`` or ``IDENTIFIER_SENT_FOR_OTHER_PERSON``.
        detail: which identifiers touch which profiles, identifiers masked.
    """

    participant: SyncParticipant
    reason: str
    detail: str


def _joined(items: list[str]) -> str:
    more = len(items) - _DETAIL_LIMIT
    return ", ".join(items[:_DETAIL_LIMIT]) + (f" (+{more} more)" if more > 0 else "")


def check_against_prior(
    participants: Iterable[SyncParticipant], profiles: PriorProfiles
) -> tuple[list[SyncParticipant], list[RefusedParticipant]]:
    """Split participants into those safe to send (anchors updated) and those refused.

    Args:
        participants: prepared participants about to be planned.
        profiles: ``load_prior_profiles`` of the ledger read under the lease.

    Returns:
        (to send, refused), both in input order.
    """
    if profiles.empty:
        return list(participants), []
    lookup, anchors, external_ids = profiles.profile_of, profiles.anchors, profiles.external_ids
    comparable = rules.comparable
    keep: list[SyncParticipant] = []
    refused: list[RefusedParticipant] = []
    for participant in participants:
        hits = [
            (kind, identifier, profile)
            for kind, identifier, _ in identifiers_of(participant.body)
            if (profile := lookup.get((kind, comparable(kind, identifier)))) is not None
        ]
        touched = {profile for _, _, profile in hits}
        if not touched:
            keep.append(participant)
            continue
        if len(touched) >= 2:
            detail = "identifiers already on different profiles: " + _joined(
                [
                    f"{kind} {mask_identifier(value)} (profile {mask_anchor(anchors[profile])})"
                    for kind, value, profile in hits
                ]
            )
            refused.append(RefusedParticipant(participant, WOULD_MERGE_PRIOR_PROFILES, detail))
            continue
        (profile,) = touched
        own = (participant.body.get("person") or {}).get("externalId")
        others = [e for e in external_ids.get(profile, ()) if e != str(own)] if own else ()
        if others:
            sent = _joined([f"{kind} {mask_identifier(value)}" for kind, value, _ in hits])
            detail = (
                f"{sent} already sent for profile {mask_anchor(anchors[profile])}, which holds "
                f"externalId {mask_identifier(min(others))}, not {mask_identifier(str(own))}"
            )
            refused.append(
                RefusedParticipant(participant, IDENTIFIER_SENT_FOR_OTHER_PERSON, detail)
            )
            continue
        anchor = anchors[profile]
        if participant.profile_anchor != anchor:
            participant = dataclasses.replace(participant, profile_anchor=anchor)
        keep.append(participant)
    return keep, refused
