"""The identity rules: which identifiers make a person, and when two identifiers are one profile.

Written once and read by every layer that decides who is who: the identity layer at prepare
time (``_normalize_frame``, ``_prior_profiles``), the sync engine's re-check under the run
lease (``sync/_batching``, ``sync/_identity_check``) and the Dagster safety checks
(``dagster/_checks``). If two of them applied different rules, one could let through a person
the other would refuse, and Infobip would merge two people's profiles.

- Kinds: ``EMAIL``, ``PHONE``, ``EXTERNAL_ID`` and ``<TYPE>:<sender>`` for the channel
  identifyBy types (FACEBOOK, LINE, ...), whose identifiers are only unique per sender.
- Comparable form: Infobip matches e-mail addresses case-insensitively, so they are compared
  lower-cased (``str.lower``, the form the identity layer normalizes them to and SQL's
  ``LOWER`` gives; not ``casefold``, which would make ``straße`` and ``strasse`` one address
  here while they stay two everywhere else); every other identifier is compared as it is.
- Person key: ``EXTERNAL_ID:<id>`` when the person has an externalId, else
  ``<identifyBy kind>:<identifyBy>``. A key ``EXTERNAL_ID:<id>`` is only ever given to a person
  carrying that externalId, so the id inside it counts as an externalId the profile holds.
- Profiles: the ledger's (kind, identifier, key) rows sharing a comparable identifier or a key
  are one profile (connected components); its anchor is its smallest key.

Pure: no I/O. The scalar rules are plain Python (the sync engine applies them per participant);
``ledger_profiles`` is vectorized (pandas, scipy) because the ledger may hold millions of rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from moments_pipeline.identity._graph import row_components

__all__ = [
    "EMAIL",
    "EXTERNAL_ID",
    "PHONE",
    "LedgerProfiles",
    "comparable",
    "comparable_sql",
    "comparable_values",
    "external_id_of_key",
    "identify_by_kind",
    "identify_by_kind_of_body",
    "ledger_profiles",
    "person_key",
]

EMAIL = "EMAIL"
PHONE = "PHONE"
EXTERNAL_ID = "EXTERNAL_ID"
_CONTACT_KINDS = frozenset((EMAIL, PHONE))
_EXTERNAL_PREFIX = EXTERNAL_ID + ":"


def identify_by_kind(identify_by_type: str, sender: object = None) -> str:
    """The kind of an identifyBy: ``EMAIL``, ``PHONE`` or ``<TYPE>:<sender>``."""
    if identify_by_type in _CONTACT_KINDS:
        return identify_by_type
    return f"{identify_by_type}:{sender}"


def identify_by_kind_of_body(identify_by: Mapping[str, Any]) -> str:
    """``identify_by_kind`` of a FlowParticipant's ``identifyBy`` object (``type``, ``sender``).

    Runs once per participant in the sync engine: contact kinds return without another call.
    """
    kind = str(identify_by["type"])
    return kind if kind in _CONTACT_KINDS else identify_by_kind(kind, identify_by.get("sender"))


def comparable(kind: str, identifier: str) -> str:
    """The form under which Infobip matches an identifier: e-mails lower-cased, others as is."""
    return identifier.lower() if kind == EMAIL else identifier


def comparable_values(kinds: np.ndarray, identifiers: np.ndarray) -> np.ndarray:
    """``comparable`` of aligned arrays of kinds and identifiers (object array of str)."""
    out = np.array(identifiers, dtype=object)
    email = np.flatnonzero(np.asarray(kinds, dtype=object) == EMAIL)
    if len(email):
        folded = np.empty(len(email), dtype=object)
        folded[:] = [value.lower() for value in out[email]]  # ``comparable``, inlined
        out[email] = folded
    return out


def comparable_sql(kind: str, identifier: str) -> str:
    """``comparable`` as a SQL expression over the named columns (DuckDB and PostgreSQL).

    ``LOWER`` is ``str.lower`` for ASCII addresses (those the identity layer's fast path
    accepts); for other scripts it follows the database's locale, so exact decisions are taken
    in Python, with ``comparable``.
    """
    return f"CASE WHEN {kind} = '{EMAIL}' THEN LOWER({identifier}) ELSE {identifier} END"


def person_key(kind: str, identifier: str) -> str:
    """The person key ``<kind>:<identifier>`` (kind ``EXTERNAL_ID`` when there is one)."""
    return f"{kind}:{identifier}"


def external_id_of_key(key: str) -> str | None:
    """The externalId inside a key ``EXTERNAL_ID:<id>``; None for any other key."""
    return key[len(_EXTERNAL_PREFIX) :] if key.startswith(_EXTERNAL_PREFIX) else None


@dataclass(frozen=True)
class LedgerProfiles:
    """The identity ledger grouped into profiles.

    Attributes:
        kinds: Kind of each distinct known identifier.
        identifiers: Its comparable form (aligned with ``kinds``; each pair once).
        profiles: Profile number (``0..len(anchors)-1``) of each identifier.
        anchors: Anchor (smallest key) of each profile number.
        external_profiles: Profile number of each externalId a profile holds.
        external_ids: That externalId (aligned with ``external_profiles``; each pair once).
    """

    kinds: np.ndarray
    identifiers: np.ndarray
    profiles: np.ndarray
    anchors: list[str]
    external_profiles: np.ndarray
    external_ids: np.ndarray


def _texts(values: Sequence[object] | np.ndarray) -> np.ndarray:
    """An object array of str (a ledger read back from SQL already is one: no copy then)."""
    array = np.asarray(values, dtype=object)
    if pd.api.types.infer_dtype(array, skipna=True) not in ("string", "empty"):
        array = np.array(
            [v if isinstance(v, str) or pd.isna(v) else str(v) for v in array], dtype=object
        )
    return array


def ledger_profiles(
    kinds: Sequence[str] | np.ndarray,
    identifiers: Sequence[str] | np.ndarray,
    keys: Sequence[str] | np.ndarray,
) -> LedgerProfiles:
    """Group ledger rows (kind, identifier, key) into profiles; rows with a null are ignored.

    Whatever was sent with an identifier landed on the profile that identifier points at, so
    rows sharing a comparable identifier or a key are one profile, transitively; reading a
    ledger written with plain person keys (several keys for one identifier) gives the same
    profiles as one written with anchors.
    """
    kind, ident, key = _texts(kinds), _texts(identifiers), _texts(keys)
    known = ~(pd.isna(kind) | pd.isna(ident) | pd.isna(key))
    if not known.all():
        kind, ident, key = kind[known], ident[known], key[known]
    if not len(key):
        texts, numbers = np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
        return LedgerProfiles(texts, texts, numbers, [], numbers, texts)
    ident = comparable_values(kind, ident)
    # Dense codes, hashed once per column; a (kind, identifier) pair is one integer.
    kind_code, kind_values = pd.factorize(kind)
    ident_code, ident_values = pd.factorize(ident)
    pair_code, pairs = pd.factorize(kind_code.astype(np.int64) * len(ident_values) + ident_code)
    id_kinds = np.asarray(kind_values, dtype=object)[pairs // len(ident_values)]
    id_values = np.asarray(ident_values, dtype=object)[pairs % len(ident_values)]
    # Keys sorted: a key's code is its rank, so a profile's anchor is its smallest code.
    key_code, key_values = pd.factorize(key, sort=True)
    key_values = np.asarray(key_values, dtype=object)
    labels = row_components(len(key_values), key_code, pair_code)
    _, profile_of_key = np.unique(labels, return_inverse=True)
    smallest = np.full(int(profile_of_key.max()) + 1, len(key_values), dtype=np.int64)
    np.minimum.at(smallest, profile_of_key, np.arange(len(key_values)))
    profile_of_id = np.empty(len(pairs), dtype=np.int64)
    profile_of_id[pair_code] = profile_of_key[key_code]
    # externalIds: the EXTERNAL_ID identifiers, and the ids inside EXTERNAL_ID:<id> keys.
    ext = id_kinds == EXTERNAL_ID
    keyed = np.fromiter(
        (k.startswith(_EXTERNAL_PREFIX) for k in key_values), dtype=bool, count=len(key_values)
    )
    from_keys = np.empty(int(keyed.sum()), dtype=object)
    from_keys[:] = [k[len(_EXTERNAL_PREFIX) :] for k in key_values[keyed]]
    external = pd.DataFrame(
        {
            "profile": np.concatenate([profile_of_id[ext], profile_of_key[keyed]]),
            "identifier": np.concatenate([id_values[ext], from_keys]),
        }
    ).drop_duplicates(ignore_index=True)
    return LedgerProfiles(
        kinds=id_kinds,
        identifiers=id_values,
        profiles=profile_of_id,
        anchors=key_values[smallest].tolist(),
        external_profiles=external["profile"].to_numpy(dtype=np.int64),
        external_ids=external["identifier"].to_numpy(dtype=object),
    )
