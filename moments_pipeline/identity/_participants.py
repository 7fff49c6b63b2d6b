"""Participants: collapsing a person's rows, listing their identifiers, building request dicts.

``to_flow_participants`` builds the spec's FlowParticipant dicts column by column (plain
lists and ``zip``; no per-row pandas indexing), so a million participants stay cheap.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from moments_pipeline.config import AudienceConfig, IdentifierType
from moments_pipeline.identity._graph import several_per_group
from moments_pipeline.identity._normalize_frame import EXTERNAL_ID, NormalizedFrame
from moments_pipeline.identity._text import from_arrow, to_arrow

IDENTITY_COLUMNS = ["kind", "identifier", "person_key"]


class IdentityInvariantError(AssertionError):
    """An identifier would be sent for two different participants (a merge risk)."""


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while creating millions of lists.

    Each list is a GC-tracked container, so building them triggers collections that walk every
    tracked object again and again (about 5x the cost of the lists themselves). Lists of
    strings form no reference cycles; the collector's state is restored afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _lists(
    group: np.ndarray, indices: np.ndarray, values: pa.Array, n_groups: int
) -> list[list[Any]]:
    """``values[indices]`` gathered per group label ``0..n_groups-1`` (stable within a group)."""
    order = np.argsort(group, kind="stable")
    offsets = np.searchsorted(group[order], np.arange(n_groups + 1)).astype(np.int64)
    nested = pa.LargeListArray.from_arrays(pa.array(offsets), values.take(pa.array(indices[order])))
    with _gc_paused():
        return nested.to_pylist()


def _first_pairs(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Mask of the first occurrence of each (first, second) pair of non-negative ints."""
    width = int(second.max()) + 1 if len(second) else 1
    return ~pd.Series(first * width + second).duplicated().to_numpy()


def _check_codes(
    person: np.ndarray, code: np.ndarray, code_values: pa.Array, audience: AudienceConfig
) -> None:
    """Raise if an identifier code is carried by two persons (pairs may repeat)."""
    shared = np.flatnonzero(several_per_group(code, person))
    if len(shared):
        sample = code_values.take(pa.array(shared[:5])).to_pylist()
        raise IdentityInvariantError(
            f"audience {audience.name!r}: identifiers shared by participants: {sample}"
        )


def build_participants(
    frame: pd.DataFrame,
    audience: AudienceConfig,
    row_ids: pd.Series,
    uses: pd.DataFrame,
    norm: NormalizedFrame,
    alive: np.ndarray,
    pk_code: np.ndarray,
    rank: np.ndarray,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Collapse the rows left alive into one participant per person key.

    The representative row (attributes, identifyBy) is the most recent by ``rank``, the
    first on ties. Every email/phone identifier of the person's rows, identifyBy values
    included, becomes a contact. Checks, on the identifier codes the lists are built from,
    that no identifier belongs to two participants.

    Returns:
        The participants frame and a mask of rows that cannot be sent because their
        non-contact identifyBy differs from the representative's.

    Raises:
        IdentityInvariantError: An identifier would be sent for two participants (a bug).
    """
    spec = audience.identity.identify_by
    code_values = norm.code_values
    n = len(frame)
    live = np.flatnonzero(alive)
    order = np.lexsort((live, -rank[live], pk_code[live]))
    ordered = live[order]
    first = np.ones(len(ordered), dtype=bool)
    first[1:] = pk_code[ordered][1:] != pk_code[ordered][:-1]
    reps = np.sort(ordered[first])
    person_of_pk = np.full(int(pk_code.max()) + 1 if n else 0, -1, dtype=np.int64)
    person_of_pk[pk_code[reps]] = np.arange(len(reps))
    person = np.full(n, -1, dtype=np.int64)
    person[live] = person_of_pk[pk_code[live]]

    use_row = uses["row"].to_numpy()
    use_code = uses["code"].to_numpy()
    is_idb = uses["is_idb"].to_numpy()
    idb_code = np.full(n, -1, dtype=np.int64)
    idb_code[use_row[is_idb]] = use_code[is_idb]
    unsendable = np.zeros(n, dtype=bool)
    if spec.type not in (IdentifierType.EMAIL, IdentifierType.PHONE):
        unsendable[live] = idb_code[live] != idb_code[reps][person[live]]
        if unsendable.any():
            person[unsendable] = -1
    sent = person[use_row] >= 0
    use_row, use_code = use_row[sent], use_code[sent]
    use_person = person[use_row]
    kind_names = list(uses["kind"].cat.categories)
    kind_code = uses["kind"].cat.codes.to_numpy()[sent]
    _check_codes(use_person, use_code, code_values, audience)

    n_persons = len(reps)
    contacts = {}
    for kind in ("EMAIL", "PHONE"):
        sel = kind_code == (kind_names.index(kind) if kind in kind_names else -2)
        p, c = use_person[sel], use_code[sel]
        keep = _first_pairs(p, c)
        contacts[kind] = (p[keep], c[keep])
    ext_code = np.full(n, -1, dtype=np.int64)
    ext_uses = kind_code == (kind_names.index(EXTERNAL_ID) if EXTERNAL_ID in kind_names else -2)
    ext_code[use_row[ext_uses]] = use_code[ext_uses]
    rep_ext = ext_code[reps]
    # The use arrays are the largest temporaries: drop them before creating the lists, and
    # hand Arrow's freed pages back to the OS (the lists live in Python's own allocator).
    del use_row, use_code, use_person, kind_code, ext_code, sel, p, c, keep, ext_uses
    pa.default_memory_pool().release_unused()
    contact_lists = {
        kind: _lists(p_kind, c_kind, code_values, n_persons)
        for kind, (p_kind, c_kind) in contacts.items()
    }
    del contacts
    rows_alive = np.flatnonzero(person >= 0)
    source_rows = _lists(person[rows_alive], rows_alive, to_arrow(row_ids), n_persons)

    participants = pd.DataFrame(
        {
            "person_key": from_arrow(norm.key_texts(pk_code[reps])),
            "identify_by_type": spec.type.value,
            "identify_by": from_arrow(code_values.take(pa.array(idb_code[reps]))),
            "sender": spec.sender,
            "external_id": from_arrow(code_values.take(pa.array(rep_ext, mask=rep_ext < 0))),
            "emails": contact_lists["EMAIL"],
            "phones": contact_lists["PHONE"],
            "source_rows": source_rows,
        }
    )
    attribute_columns = {
        **{f"attr:{k}": v for k, v in audience.person.attributes.items()},
        **{f"custom:{k}": v for k, v in audience.person.custom_attributes.items()},
        **{f"var:{k}": v for k, v in audience.variables.items()},
    }
    for name, source in attribute_columns.items():
        participants[name] = frame[source].iloc[reps].reset_index(drop=True)
    return participants, unsendable


def _identity_rows(participants: pd.DataFrame, key_column: str) -> pd.DataFrame:
    """(kind, identifier, ``key_column`` value) of every identifier, with duplicates."""
    keys = participants[key_column].to_numpy()
    idb_type = participants["identify_by_type"].astype(str).to_numpy()
    sender = participants["sender"].astype(object).to_numpy()
    contact_type = np.isin(idb_type, ["EMAIL", "PHONE"])
    idb_kind = np.where(contact_type, idb_type, idb_type + ":" + sender.astype(str))
    parts = [
        pd.DataFrame(
            {"kind": idb_kind, "identifier": participants["identify_by"], "person_key": keys}
        )
    ]
    ext = participants["external_id"].notna().to_numpy()
    parts.append(
        pd.DataFrame(
            {
                "kind": EXTERNAL_ID,
                "identifier": participants["external_id"].to_numpy()[ext],
                "person_key": keys[ext],
            }
        )
    )
    for kind, column in (("EMAIL", "emails"), ("PHONE", "phones")):
        exploded = participants[[key_column, column]].explode(column).dropna()
        parts.append(
            pd.DataFrame(
                {
                    "kind": kind,
                    "identifier": exploded[column].to_numpy(),
                    "person_key": exploded[key_column].to_numpy(),
                }
            )
        )
    return pd.concat(parts, ignore_index=True).astype(str)


def participant_identities(participants: pd.DataFrame) -> pd.DataFrame:
    """Every identifier the participants carry, as the identity ledger stores them.

    The ledger models the account's profiles, so each identifier is recorded under the
    participant's ``profile_anchor`` (the prior profile it updates, else its own person key),
    not under the audience's own person key: two audiences keyed differently then agree.

    Args:
        participants: ``PreparedAudience.participants`` (a frame without ``profile_anchor``
            falls back to ``person_key``).

    Returns:
        Distinct rows of ``kind`` (``EMAIL``, ``PHONE``, ``EXTERNAL_ID`` or
        ``<TYPE>:<sender>``), ``identifier`` and ``person_key`` (holding the profile anchor).
    """
    column = "profile_anchor" if "profile_anchor" in participants.columns else "person_key"
    return _identity_rows(participants, column).drop_duplicates(ignore_index=True)


def check_unique_identifiers(participants: pd.DataFrame, audience: AudienceConfig) -> None:
    """Raise if any identifier belongs to two participants.

    Raises:
        IdentityInvariantError: Naming the audience and a few offending identifiers.
    """
    # Keyed by participant, not by anchor: two participants may update one prior profile,
    # and their identifiers must still be distinct.
    identities = _identity_rows(participants, "person_key").drop_duplicates(ignore_index=True)
    dup = identities.duplicated(["kind", "identifier"], keep=False)
    if dup.any():
        sample = identities[dup].head(5).to_dict("records")
        raise IdentityInvariantError(
            f"audience {audience.name!r}: identifiers shared by participants: {sample}"
        )
