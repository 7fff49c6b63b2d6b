"""The result of preparation and its accounting: every row and every refused value recorded.

Every input row ends in exactly one participant's ``source_rows`` or in ``quarantine`` (checked
here, not just tested); every refused contact value is a ``dropped_values`` record with its row
id, column, masked value, reason and detail; every reason carries a non-empty detail.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from moments_pipeline.config import AudienceConfig
from moments_pipeline.identity._reasons import QuarantineReason
from moments_pipeline.identity._text import shown_text

#: Columns of ``PreparedAudience.dropped_values``.
DROPPED_VALUE_COLUMNS = ["row_id", "column_name", "value_masked", "reason", "detail"]
#: Detail of a quarantined row whose step gave none (a reason always carries a detail).
_FALLBACK_DETAIL = {
    QuarantineReason.IDENTITY_CONFLICT: "shares an identifier with another person",
    QuarantineReason.SHARED_IDENTIFY_BY: "its identifyBy is used by another person",
    QuarantineReason.WOULD_MERGE_PRIOR_PROFILES: "identifiers already sent for two profiles",
    QuarantineReason.IDENTIFIER_SENT_FOR_OTHER_PERSON: "a profile holds another externalId",
}


@dataclass(frozen=True)
class PreparedAudience:
    """Result of ``prepare_audience``.

    Attributes:
        participants: One row per person: ``person_key``, ``profile_anchor`` (the prior
            profile it updates, else its own person key: what the identity ledger records
            for its identifiers), ``identify_by_type``,
            ``identify_by``, ``sender``, ``external_id``, ``emails`` (list), ``phones`` (list),
            ``source_rows`` (list of row ids), then ``attr:<spec name>``,
            ``custom:<name>`` and ``var:<name>`` columns.
        quarantine: One row per quarantined input row: ``row_id``, ``reason``, ``detail``,
            then the raw identity columns (as text) under their source names.
        dropped_values: Contact values left out (of a participant, or of a row quarantined
            for another reason): ``row_id``, ``column_name``, ``value_masked``, ``reason``
            (``DroppedValueReason``), ``detail``.
        counts: ``input_rows``, ``participants``, ``participant_rows``, ``quarantined_rows``,
            ``dropped_values``, ``quarantined:<REASON>`` and ``dropped:<REASON>`` per reason.
    """

    participants: pd.DataFrame
    quarantine: pd.DataFrame
    dropped_values: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)


def raw_identity_columns(audience: AudienceConfig) -> list[str]:
    """Source columns shown raw in the quarantine table."""
    identity = audience.identity
    names = [identity.identify_by.column, identity.external_id, *identity.emails, *identity.phones]
    return [c for c in dict.fromkeys(names) if c]


def build_result(
    frame: pd.DataFrame,
    audience: AudienceConfig,
    row_ids: pd.Series,
    participants: pd.DataFrame,
    reason: np.ndarray,
    detail: np.ndarray,
    dropped: list[pd.DataFrame],
) -> PreparedAudience:
    """Assemble the quarantine and dropped-value tables and the counts; check the accounting.

    Raises:
        AssertionError: A row is lost or counted twice (a bug).
    """
    quarantined = np.flatnonzero(pd.notna(reason))
    empty = np.flatnonzero(pd.notna(reason) & (detail == ""))
    detail[empty] = [_FALLBACK_DETAIL.get(r, r) for r in reason[empty].tolist()]
    quarantine = pd.DataFrame(
        {
            "row_id": row_ids.iloc[quarantined].to_numpy(dtype=object),
            "reason": reason[quarantined].astype(str),
            "detail": detail[quarantined].astype(str),
        }
    )
    for c in raw_identity_columns(audience):
        quarantine[c] = shown_text(frame[c].iloc[quarantined]).to_numpy(dtype=object)
    dropped_frame = pd.concat(dropped, ignore_index=True)
    dropped_values = pd.DataFrame(
        {
            "row_id": row_ids.iloc[dropped_frame["row"].to_numpy(dtype=np.int64)].to_numpy(
                dtype=object
            ),
            "column_name": dropped_frame["column_name"].astype(str).to_numpy(dtype=object),
            "value_masked": dropped_frame["value_masked"].astype(str).to_numpy(dtype=object),
            "reason": dropped_frame["reason"].astype(str).to_numpy(dtype=object),
            "detail": dropped_frame["detail"].astype(str).to_numpy(dtype=object),
        },
        columns=DROPPED_VALUE_COLUMNS,
    )
    counts = {
        "input_rows": len(frame),
        "participants": len(participants),
        "participant_rows": sum(map(len, participants["source_rows"].tolist())),
        "quarantined_rows": len(quarantine),
        "dropped_values": len(dropped_values),
    }
    for code, count in quarantine["reason"].value_counts().items():
        counts[f"quarantined:{code}"] = int(count)
    for code, count in dropped_values["reason"].value_counts().items():
        counts[f"dropped:{code}"] = int(count)
    if counts["participant_rows"] + counts["quarantined_rows"] != counts["input_rows"]:
        raise AssertionError("identity preparation lost or duplicated input rows")
    return PreparedAudience(participants, quarantine, dropped_values, counts)
