"""The identity ledger re-checked right before planning, inside the run lease.

Preparation (the identity layer) already refuses a person whose identifiers touch several
earlier profiles, but it reads the ledger when the audience is *prepared*. Several audiences
prepared before any of them syncs (one Dagster run materializing them all) each see the ledger
as it was before the others sent, so audience B can carry a person that now points at two
profiles audience A has just created. Infobip would merge them. The engine therefore reads the
ledger again, under the lease (no other run sends meanwhile), with the identity layer's rules:

- profiles = connected components of the ledger's (kind, identifier, person key) rows
  (rows sharing an identifier or a key are one profile; its anchor is its smallest key; its
  externalIds are its EXTERNAL_ID identifiers and the ids inside ``EXTERNAL_ID:<id>`` keys);
- a participant whose identifiers touch two or more profiles: ``WOULD_MERGE_PRIOR_PROFILES``;
- one profile holding an externalId other than the participant's own:
  ``IDENTIFIER_SENT_FOR_OTHER_PERSON``;
- otherwise the participant is recorded under that profile's anchor (none touched: as is).

E-mail addresses are compared case-folded (Infobip matches them so). Pure: no I/O. The ledger's
components are computed vectorized (scipy); each participant is then one dict lookup per
identifier, on the same pass that already reads every body.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ._batching import SyncParticipant, identifiers_of, mask_identifier

WOULD_MERGE_PRIOR_PROFILES = "WOULD_MERGE_PRIOR_PROFILES"
IDENTIFIER_SENT_FOR_OTHER_PERSON = "IDENTIFIER_SENT_FOR_OTHER_PERSON"
EXTERNAL_ID = "EXTERNAL_ID"
_EXTERNAL_PREFIX = EXTERNAL_ID + ":"
_DETAIL_LIMIT = 5


def _comparable(kind: str, identifier: str) -> tuple[str, str]:
    return (kind, identifier.casefold() if kind == "EMAIL" else identifier)


def mask_anchor(anchor: str) -> str:
    """Mask the identifier inside an anchor ``<kind>:<identifier>`` (the kind stays readable)."""
    kind, sep, value = anchor.rpartition(":")
    return f"{kind}{sep}{mask_identifier(value)}" if sep else mask_identifier(anchor)


@dataclass(frozen=True)
class PriorProfiles:
    """The identity ledger grouped into profiles.

    Attributes:
        profile_of: (kind, comparable identifier) -> profile number.
        anchors: anchor (smallest person key) of each profile number.
        external_ids: externalIds each profile holds (only profiles holding any).
    """

    profile_of: dict[tuple[str, str], int]
    anchors: list[str]
    external_ids: dict[int, frozenset[str]]

    @property
    def empty(self) -> bool:
        """True when nothing was ever sent."""
        return not self.profile_of


def load_prior_profiles(rows: Sequence[tuple[str, str, str]]) -> PriorProfiles:
    """Group the ledger's ``sent_identities()`` rows (kind, identifier, key) into profiles."""
    if not rows:
        return PriorProfiles({}, [], {})
    frame = pd.DataFrame(rows, columns=["kind", "identifier", "key"]).astype(str)
    email = frame["kind"].to_numpy() == "EMAIL"
    frame.loc[email, "identifier"] = frame.loc[email, "identifier"].str.casefold()
    key_code, keys = pd.factorize(frame["key"])
    id_code, ids = pd.MultiIndex.from_frame(frame[["kind", "identifier"]]).factorize()
    n_keys, n_nodes = len(keys), len(keys) + len(ids)
    # Bipartite graph: key nodes 0..n_keys-1, identifier nodes after them.
    edges = coo_matrix(
        (np.ones(len(frame), dtype=np.int8), (key_code, id_code + n_keys)),
        shape=(n_nodes, n_nodes),
    )
    _, labels = connected_components(edges, directed=False)
    key_labels = labels[:n_keys]
    # Number profiles 0..k-1 by their key components.
    _, profile_of_key = np.unique(key_labels, return_inverse=True)
    key_series = pd.Series(np.asarray(keys, dtype=object))
    anchors = key_series.groupby(profile_of_key).min().tolist()
    id_profile = profile_of_key[key_code]
    lookup = dict(
        zip(
            zip(frame["kind"].tolist(), frame["identifier"].tolist(), strict=True),
            id_profile.tolist(),
            strict=True,
        )
    )
    external: dict[int, set[str]] = {}
    for (kind, identifier), profile in lookup.items():
        if kind == EXTERNAL_ID:
            external.setdefault(profile, set()).add(identifier)
    for index, key in enumerate(key_series.tolist()):
        if key.startswith(_EXTERNAL_PREFIX):
            external.setdefault(int(profile_of_key[index]), set()).add(key[len(_EXTERNAL_PREFIX) :])
    return PriorProfiles(lookup, anchors, {p: frozenset(v) for p, v in external.items()})


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
    keep: list[SyncParticipant] = []
    refused: list[RefusedParticipant] = []
    for participant in participants:
        hits = [
            (kind, identifier, profile)
            for kind, identifier, _ in identifiers_of(participant.body)
            if (profile := lookup.get(_comparable(kind, identifier))) is not None
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
        others = external_ids.get(profile, frozenset()) - {str(own)} if own else frozenset()
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
