"""``prepare_audience``: normalized rows -> one participant per person, or quarantine.

Steps: read row ids (a missing or shared one quarantines only its rows, ``_row_ids``);
normalize identifiers; link rows sharing any identifier (connected components); a
component holding several person keys is a conflict resolved by the audience's policy; the
identity ledger (``prior_identities``) is read as the account's profiles, and a person whose
identifiers would merge two of them, or give a profile a second externalId, is quarantined
(``_prior_profiles``); the remaining rows collapse into one participant per person key.
Afterwards no identifier belongs to two participants: checked in code, not just tested; and
every row is in one participant or in quarantine (``_accounting``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from moments_pipeline.config import AudienceConfig, ConflictPolicy
from moments_pipeline.identity._accounting import PreparedAudience, build_result
from moments_pipeline.identity._graph import row_components, several_per_group
from moments_pipeline.identity._mask import mask_identifier
from moments_pipeline.identity._normalize_frame import EXTERNAL_ID, normalize_frame, use_values
from moments_pipeline.identity._participants import build_participants
from moments_pipeline.identity._prior_profiles import load_prior_profiles, resolve_profiles
from moments_pipeline.identity._reasons import DROPPED_DETAILS, DroppedValueReason, QuarantineReason
from moments_pipeline.identity._row_ids import row_ids as read_row_ids

_DETAIL_LIMIT = 5


def _rank(values: pd.Series) -> np.ndarray:
    """Recency rank per row: higher is more recent, missing is oldest."""
    return values.rank(method="dense", na_option="top").to_numpy(dtype=np.float64)


def _describe_shared(
    uses: pd.DataFrame, code_values: pa.Array, row_pk: np.ndarray, rows_mask: np.ndarray
) -> pd.Series:
    """Detail text per component: the identifiers used by more than one person key."""
    sel = uses[rows_mask[uses["row"].to_numpy()]]
    if sel.empty:
        return pd.Series(dtype=object)
    pk = row_pk[sel["row"].to_numpy()]
    several = several_per_group(sel["code"].to_numpy(), pk)
    shared = sel[several[sel["code"].to_numpy()]].drop_duplicates(["comp", "code"])
    # Masked like every identifier the pipeline shows: the detail reaches the quarantine table
    # and orchestrator metadata; the row id is what leads back to the source row.
    masked = [mask_identifier(str(v)) for v in use_values(shared, code_values)]
    text = shared["kind"].astype(str) + " " + pd.Series(masked, index=shared.index)
    return text.groupby(shared["comp"].to_numpy()).agg(
        lambda s: (
            "shared identifiers: "
            + ", ".join(s.iloc[:_DETAIL_LIMIT])
            + (f" (+{len(s) - _DETAIL_LIMIT} more)" if len(s) > _DETAIL_LIMIT else "")
        )
    )


def _conflicting(uses: pd.DataFrame, n: int, alive: np.ndarray, pk_code: np.ndarray) -> np.ndarray:
    """Component label per row (written into ``uses['comp']``) and the conflict mask."""
    labels = row_components(n, uses["row"].to_numpy(), uses["code"].to_numpy())
    uses["comp"] = labels[uses["row"].to_numpy()]
    live = np.flatnonzero(alive)
    several = several_per_group(labels[live], pk_code[live])
    conflict = np.zeros(n, dtype=bool)
    conflict[live] = several[labels[live]]
    return conflict


def prepare_audience(
    frame: pd.DataFrame,
    audience: AudienceConfig,
    *,
    prior_identities: pd.DataFrame | None = None,
) -> PreparedAudience:
    """Normalize, dedupe and conflict-check an audience frame.

    Args:
        frame: Source rows holding every column of ``audience.source_columns()``.
        audience: The audience definition.
        prior_identities: Identifiers already sent (columns ``kind``, ``identifier``,
            ``person_key``), e.g. the sync engine's identity ledger. Rows sharing an
            identifier or key form one profile; ``person_key`` should be the profile anchor
            that ``participant_identities`` returns, but plain person keys work too.

    Returns:
        Participants, quarantine, dropped values and counts. Every input row is either in
        exactly one participant's ``source_rows`` or in ``quarantine``.

    Raises:
        ValueError: A source column is missing.
        IdentityInvariantError: An identifier would be sent for two participants (a bug).
    """
    missing = [c for c in audience.source_columns() if c not in frame.columns]
    if missing:
        raise ValueError(f"audience {audience.name!r}: source has no column(s) {missing}")
    frame = frame.reset_index(drop=True)
    n = len(frame)
    ids = read_row_ids(frame, audience)
    row_ids = ids.ids
    norm = normalize_frame(frame, audience)
    reason = norm.row_reason
    detail = norm.row_detail
    # A row without its own row id cannot be traced: that reason comes first.
    untraceable = pd.notna(ids.reason)
    reason[untraceable] = ids.reason[untraceable]
    detail[untraceable] = ids.detail[untraceable]
    uses = norm.uses
    if untraceable.any():
        uses = uses[~untraceable[uses["row"].to_numpy()]].reset_index(drop=True)
    norm.uses = uses.iloc[:0]  # filtered copies of ``uses`` follow; keep only the live one
    dropped = [norm.dropped]

    pk_code = _person_codes(uses, n)

    def quarantine(mask: np.ndarray, code: QuarantineReason, text: np.ndarray | str) -> None:
        reason[mask] = code.value
        detail[mask] = text if isinstance(text, str) else text[mask]

    alive = pd.isna(reason)
    conflict = _conflicting(uses, n, alive, pk_code)
    policy = audience.conflicts.policy
    if conflict.any():
        comp_of_row = np.full(n, -1, dtype=np.int64)
        comp_of_row[uses["row"].to_numpy()] = uses["comp"].to_numpy()
        shared_text = _describe_shared(uses, norm.code_values, pk_code, conflict)
        row_detail = _per_row(comp_of_row, conflict, shared_text.to_dict())
        if policy is ConflictPolicy.QUARANTINE:
            quarantine(conflict, QuarantineReason.IDENTITY_CONFLICT, row_detail)
        elif policy is ConflictPolicy.KEEP_MOST_RECENT:
            column = audience.conflicts.recency_column
            assert column is not None  # guaranteed by ConflictConfig
            rank = _rank(frame[column])
            rows = np.flatnonzero(conflict)
            persons = pd.DataFrame(
                {"comp": comp_of_row[rows], "pk": pk_code[rows], "rank": rank[rows], "pos": rows}
            )
            best = (
                persons.groupby(["comp", "pk"], sort=False)
                .agg(rank=("rank", "max"), pos=("pos", "min"))
                .reset_index()
                .sort_values(["comp", "rank", "pos"], ascending=[True, False, True])
                .drop_duplicates("comp")
            )
            winner = pd.Series(best["pk"].to_numpy(), index=best["comp"].to_numpy())
            loser = np.zeros(n, dtype=bool)
            loser[rows] = winner.reindex(comp_of_row[rows]).to_numpy() != pk_code[rows]
            kept = norm.key_texts(pk_code[best["pos"].to_numpy()]).to_pylist()
            kept_by_comp = dict(zip(best["comp"].tolist(), kept, strict=True))
            note = _per_row(comp_of_row, loser, kept_by_comp)
            text = np.array(
                [
                    f"kept more recent person {k}; {d}"
                    for k, d in zip(note, row_detail, strict=True)
                ],
                dtype=object,
            )
            quarantine(loser, QuarantineReason.SUPERSEDED_BY_MORE_RECENT, text)
        else:
            shared_uses = _shared_uses(uses, pk_code)
            lost_idb = np.zeros(n, dtype=bool)
            lost_idb[uses.loc[shared_uses & uses["is_idb"].to_numpy(), "row"].to_numpy()] = True
            lost_ext = np.zeros(n, dtype=bool)
            ext_uses = shared_uses & (uses["kind"] == EXTERNAL_ID).to_numpy()
            lost_ext[uses.loc[ext_uses, "row"].to_numpy()] = True
            quarantine(lost_idb | lost_ext, QuarantineReason.SHARED_IDENTIFY_BY, row_detail)
            secondary = uses[shared_uses & ~uses["is_idb"].to_numpy()]
            dropped.append(
                pd.DataFrame(
                    {
                        "row": secondary["row"].to_numpy(),
                        "column_name": secondary["column"].astype(str).to_numpy(),
                        "value_masked": [
                            mask_identifier(v) for v in use_values(secondary, norm.code_values)
                        ],
                        "reason": DroppedValueReason.SHARED_IDENTIFIER.value,
                        "detail": DROPPED_DETAILS[DroppedValueReason.SHARED_IDENTIFIER],
                    }
                )
            )
            uses = uses[~shared_uses]
        uses = uses[pd.isna(reason)[uses["row"].to_numpy()]].reset_index(drop=True)
        # Re-check: whatever a policy left must be free of conflicts. (Quarantining whole
        # components leaves none by construction; the uniqueness check still runs later.)
        alive = pd.isna(reason)
        again = (
            np.zeros(n, dtype=bool)
            if policy is ConflictPolicy.QUARANTINE
            else _conflicting(uses, n, alive, pk_code)
        )
        if again.any():
            quarantine(again, QuarantineReason.IDENTITY_CONFLICT, "conflict left after policy")
            uses = uses[~again[uses["row"].to_numpy()]].reset_index(drop=True)

    anchor_by_key: dict[str, str] = {}
    if prior_identities is not None and len(prior_identities):
        resolution = resolve_profiles(
            uses,
            norm.code_values,
            np.asarray(norm.key_texts(pk_code).to_numpy(zero_copy_only=False), dtype=object),
            load_prior_profiles(prior_identities),
        )
        quarantine(
            resolution.would_merge,
            QuarantineReason.WOULD_MERGE_PRIOR_PROFILES,
            resolution.detail,
        )
        quarantine(
            resolution.other_external_id,
            QuarantineReason.IDENTIFIER_SENT_FOR_OTHER_PERSON,
            resolution.detail,
        )
        flagged = resolution.would_merge | resolution.other_external_id
        uses = uses[~flagged[uses["row"].to_numpy()]].reset_index(drop=True)
        anchor_by_key = resolution.anchor_by_key

    alive = pd.isna(reason)
    # Safety net: a row left without its identifyBy (by any step) is never sent.
    has_idb = np.zeros(n, dtype=bool)
    has_idb[uses.loc[uses["is_idb"].to_numpy(), "row"].to_numpy()] = True
    if (alive & ~has_idb).any():
        quarantine(
            alive & ~has_idb,
            QuarantineReason.NO_USABLE_IDENTIFIER,
            "no identifyBy left after conflict resolution",
        )
        alive = pd.isna(reason)
    recency = audience.conflicts.recency_column
    rank = _rank(frame[recency]) if recency else np.zeros(n)
    participants, unsendable = build_participants(
        frame, audience, row_ids, uses, norm, alive, pk_code, rank
    )
    if unsendable.any():
        quarantine(
            unsendable,
            QuarantineReason.UNSENDABLE_IDENTIFY_BY,
            "person already has another identifyBy of this type",
        )
    keys = participants["person_key"]
    anchors = keys.map(anchor_by_key).fillna(keys) if anchor_by_key else keys.copy()
    participants.insert(1, "profile_anchor", anchors)
    return build_result(frame, audience, row_ids, participants, reason, detail, dropped)


def _person_codes(uses: pd.DataFrame, n: int) -> np.ndarray:
    """Person key per row as an identifier code: the externalId's, else the identifyBy's.

    Codes are unique across kinds, so equal codes mean equal person-key texts; -1 for rows
    without identifiers (quarantined ones).
    """
    codes = np.full(n, -1, dtype=np.int64)
    rows, code = uses["row"].to_numpy(), uses["code"].to_numpy()
    idb = uses["is_idb"].to_numpy()
    codes[rows[idb]] = code[idb]
    ext = (uses["kind"] == EXTERNAL_ID).to_numpy()
    codes[rows[ext]] = code[ext]
    return codes


def _per_row(comp_of_row: np.ndarray, mask: np.ndarray, by_comp: dict) -> np.ndarray:
    """Text per row from a per-component mapping, for the rows in ``mask`` ("" elsewhere)."""
    out = np.full(len(comp_of_row), "", dtype=object)
    rows = np.flatnonzero(mask)
    out[rows] = [str(by_comp.get(c, "")) for c in comp_of_row[rows].tolist()]
    return out


def _shared_uses(uses: pd.DataFrame, pk_code: np.ndarray) -> np.ndarray:
    codes = uses["code"].to_numpy()
    several = several_per_group(codes, pk_code[uses["row"].to_numpy()])
    return several[codes]
