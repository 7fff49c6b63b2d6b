"""Cross-run identity: the identity ledger read as a model of the account's People profiles.

Infobip merges profiles when ONE participant's identifiers point at SEVERAL existing profiles.
A person key is only an audience's own label (``EXTERNAL_ID:<id>`` or ``<kind>:<identifyBy>``),
so two audiences keyed differently name the same human differently; comparing raw keys would
quarantine people who merely update their own profile. Instead:

- Ledger rows sharing an identifier (or a key) belong to one profile: whatever was sent with
  that identifier landed on the profile the identifier points at. ``_rules.ledger_profiles``
  gives the profiles (the same grouping the sync engine's re-check uses), so a ledger written
  with plain person keys (several keys for one identifier) is read correctly too. A profile's
  anchor is its smallest key; identifiers are matched in the rules' comparable form.
- A person whose identifiers touch two or more profiles would merge them: quarantined.
- A person touching exactly one profile updates it, unless it carries an externalId and the
  profile already holds a different one: quarantined.
- A person touching none creates a new profile, anchored by its own person key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from moments_pipeline.identity._mask import mask_anchor, mask_identifier
from moments_pipeline.identity._normalize_frame import use_values
from moments_pipeline.identity._participants import IDENTITY_COLUMNS
from moments_pipeline.identity._rules import EXTERNAL_ID, comparable_values, ledger_profiles

_DETAIL_LIMIT = 5


@dataclass(frozen=True)
class PriorProfiles:
    """The identity ledger grouped into profiles (``_rules.ledger_profiles``), as frames.

    Attributes:
        lookup: One row per known identifier: ``kind``, ``identifier`` (comparable form),
            ``profile`` (int).
        anchors: Anchor text per profile number.
        external_ids: ``profile`` and ``identifier`` of every externalId a profile holds.
    """

    lookup: pd.DataFrame
    anchors: pd.Series
    external_ids: pd.DataFrame


def load_prior_profiles(prior: pd.DataFrame) -> PriorProfiles:
    """Group ledger rows (``kind``, ``identifier``, ``person_key``) into profiles.

    Raises:
        ValueError: A ledger column is missing.
    """
    missing = set(IDENTITY_COLUMNS) - set(prior.columns)
    if missing:
        raise ValueError(f"prior_identities lacks column(s) {sorted(missing)}")
    profiles = ledger_profiles(
        prior["kind"].to_numpy(), prior["identifier"].to_numpy(), prior["person_key"].to_numpy()
    )
    lookup = pd.DataFrame(
        {
            "kind": profiles.kinds,
            "identifier": profiles.identifiers,
            "profile": profiles.profiles,
        }
    )
    external_ids = pd.DataFrame(
        {"profile": profiles.external_profiles, "identifier": profiles.external_ids}
    )
    return PriorProfiles(lookup, pd.Series(profiles.anchors, dtype=object), external_ids)


@dataclass(frozen=True)
class ProfileResolution:
    """Outcome of matching a run's persons against the prior profiles.

    Attributes:
        would_merge: Row mask: the row's person touches two or more prior profiles.
        other_external_id: Row mask: the person's one profile holds another externalId.
        detail: Per-row detail text for the flagged rows ("" elsewhere).
        anchor_by_key: Prior anchor per person key of the persons that update a profile.
    """

    would_merge: np.ndarray
    other_external_id: np.ndarray
    detail: np.ndarray
    anchor_by_key: dict[str, str]


def _joined(texts: pd.Series) -> str:
    head = ", ".join(texts.iloc[:_DETAIL_LIMIT])
    more = len(texts) - _DETAIL_LIMIT
    return head + (f" (+{more} more)" if more > 0 else "")


def resolve_profiles(
    uses: pd.DataFrame, code_values: pa.Array, pk_text: np.ndarray, profiles: PriorProfiles
) -> ProfileResolution:
    """Match each person's identifiers (the rows in ``uses``) against the prior profiles.

    Args:
        uses: The long identifier table of the rows still alive (``row``, ``kind``, ``code``).
        code_values: The value of each identifier code.
        pk_text: Person key per input row.
        profiles: ``load_prior_profiles`` of the ledger.

    Returns:
        Masks of the rows to quarantine, their detail, and the anchors of updating persons.
    """
    n = len(pk_text)
    rows = uses["row"].to_numpy()
    kinds = uses["kind"].astype(str).to_numpy(dtype=object)
    values = use_values(uses, code_values)
    probe = pd.DataFrame(
        {
            "pk": pk_text[rows],
            "kind": kinds,
            "identifier": values,
            # Matched in the rules' comparable form; details show the value as it is sent.
            "match": comparable_values(kinds, values),
        }
    )
    lookup = profiles.lookup.rename(columns={"identifier": "match"})
    hits = probe.merge(lookup, on=["kind", "match"], how="inner")
    hits = hits.drop_duplicates(["pk", "kind", "identifier"], ignore_index=True)
    per_person = hits[["pk", "profile"]].drop_duplicates()
    touched = per_person.groupby("pk", sort=False)["profile"].size()
    multi = hits[hits["pk"].map(touched).to_numpy() >= 2]
    merge_text = _joined_by_pk(
        multi["kind"]
        + " "
        + multi["identifier"].map(mask_identifier)
        + " (profile "
        + multi["profile"].map(profiles.anchors).map(mask_anchor)
        + ")",
        multi["pk"],
        "identifiers already on different profiles: ",
    )

    single = per_person[per_person["pk"].map(touched).to_numpy() == 1]
    own_ext = probe[probe["kind"].to_numpy() == EXTERNAL_ID][["pk", "identifier"]]
    clash = single.merge(own_ext, on="pk").merge(
        profiles.external_ids, on="profile", suffixes=("", "_prior")
    )
    clash = clash[clash["identifier"] != clash["identifier_prior"]]
    # The detail names the smallest other externalId, as the sync engine's re-check does.
    clash = clash.sort_values("identifier_prior", kind="stable").drop_duplicates("pk")
    clashing_hits = hits[hits["pk"].isin(clash["pk"]).to_numpy()]
    sent = _joined_by_pk(
        clashing_hits["kind"] + " " + clashing_hits["identifier"].map(mask_identifier),
        clashing_hits["pk"],
        "",
    )
    ext_text = pd.Series(
        (
            sent.reindex(clash["pk"].to_numpy()).to_numpy()
            + " already sent for profile "
            + clash["profile"].map(profiles.anchors).map(mask_anchor).to_numpy()
            + ", which holds externalId "
            + clash["identifier_prior"].map(mask_identifier).to_numpy()
            + ", not "
            + clash["identifier"].map(mask_identifier).to_numpy()
        ),
        index=clash["pk"].to_numpy(),
        dtype=object,
    )

    detail = np.full(n, "", dtype=object)
    alive_rows = np.unique(rows)
    would_merge = np.zeros(n, dtype=bool)
    other_ext = np.zeros(n, dtype=bool)
    for mask, text in ((would_merge, merge_text), (other_ext, ext_text)):
        if len(text):
            flagged = alive_rows[np.isin(pk_text[alive_rows], text.index.to_numpy())]
            mask[flagged] = True
            detail[flagged] = text.reindex(pk_text[flagged]).to_numpy()
    updating = single[~single["pk"].isin(clash["pk"])]
    anchor_by_key = dict(
        zip(
            updating["pk"].tolist(),
            updating["profile"].map(profiles.anchors).tolist(),
            strict=True,
        )
    )
    return ProfileResolution(would_merge, other_ext, detail, anchor_by_key)


def _joined_by_pk(texts: pd.Series, pk: pd.Series, prefix: str) -> pd.Series:
    if texts.empty:
        return pd.Series(dtype=object)
    return prefix + texts.groupby(pk.to_numpy(), sort=False).agg(_joined)
