"""Bridges from the identity layer's ``PreparedAudience`` to the engine's inputs, and back.

- ``participants_from_prepared``: one ``SyncParticipant`` per prepared person.
- ``quarantine_from_prepared``: the quarantined rows with their reasons, for the ledger.
- ``prior_identities_frame``: the ledger's identity record in the shape ``prepare_audience``
  takes as ``prior_identities``, so an identifier that moves to another person is quarantined.
"""

from __future__ import annotations

import pandas as pd

from moments_pipeline.config import AudienceConfig
from moments_pipeline.identity import IDENTITY_COLUMNS, PreparedAudience, to_flow_participants

from ._batching import SyncParticipant
from ._protocols import LedgerStore, QuarantineRow


def participants_from_prepared(
    prepared: PreparedAudience, audience: AudienceConfig
) -> list[SyncParticipant]:
    """The prepared participants as engine input (person key, body, anchor, source rows).

    ``source_rows`` name the input rows of a person the engine refuses at its identity re-check.
    ``profile_anchor`` (the Infobip profile each person updates, as the identity layer resolved
    it) is carried along so the identity ledger records identifiers under it.
    """
    frame = prepared.participants
    bodies = to_flow_participants(frame, audience)
    keys = frame["person_key"].astype(str).tolist()
    if "profile_anchor" in frame.columns:
        anchors: list[str | None] = frame["profile_anchor"].astype(str).tolist()
    else:
        anchors = [None] * len(keys)
    if "source_rows" in frame.columns:
        rows: list[tuple[str, ...]] = [
            tuple(str(r) for r in rs) if rs is not None else () for rs in frame["source_rows"]
        ]
    else:
        rows = [()] * len(keys)
    return [
        SyncParticipant(k, b, a, r) for k, b, a, r in zip(keys, bodies, anchors, rows, strict=True)
    ]


def quarantine_from_prepared(
    prepared: PreparedAudience, *, audience: str, partition_key: str
) -> list[QuarantineRow]:
    """One ``QuarantineRow`` per quarantined input row."""
    q = prepared.quarantine
    if not len(q):
        return []
    details = q["detail"].astype(object).where(q["detail"].notna(), None).tolist()
    return [
        QuarantineRow(audience, partition_key, str(row_id), str(reason), detail)
        for row_id, reason, detail in zip(
            q["row_id"].tolist(), q["reason"].astype(str).tolist(), details, strict=True
        )
    ]


def prior_identities_frame(ledger: LedgerStore) -> pd.DataFrame:
    """The identity ledger as ``prepare_audience(prior_identities=...)`` expects it.

    ``person_key`` holds the profile anchor each identifier was sent under (the person key
    when none was recorded).
    """
    rows = ledger.sent_identities()
    return pd.DataFrame(rows, columns=IDENTITY_COLUMNS)
