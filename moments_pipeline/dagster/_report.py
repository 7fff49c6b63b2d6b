"""From library results to Dagster metadata and asset-check results.

Pure functions of frames, ``SyncResult`` and ledger rows (the ledger is only read). Identifiers
shown in metadata are masked through ``_metadata``; counts and reasons are shown as they are.
The checks are evaluated from what the ledger says was actually sent (batch members of batches
whose body may have left), not from what the run meant to send.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
import orjson
import pandas as pd

from moments_pipeline.config import AudienceConfig
from moments_pipeline.dagster import _metadata as md
from moments_pipeline.dagster._specs import (
    CHECK_NO_CONFLICT_SENT,
    CHECK_NO_QUARANTINE_LEAK,
    CHECK_NOTHING_PENDING,
    CHECK_REJECTION_RATE,
    AudienceSpecs,
)
from moments_pipeline.dagster._tables import is_listlike, printable
from moments_pipeline.identity import PreparedAudience, rules
from moments_pipeline.sync import (
    BatchState,
    LedgerStore,
    QuarantineRow,
    SqlLedgerStore,
    StatusRow,
    SyncParticipant,
    SyncResult,
)

#: Batch states whose body may have left: what Infobip may have seen.
_MAY_HAVE_LEFT = frozenset(
    {BatchState.SENDING, BatchState.SENT, BatchState.HELD, BatchState.REPORTED}
)
_MAX_BATCH = 1000
_QUARANTINE_SHOWN = ("row_id", "reason", "detail")


def table_schema(frame: pd.DataFrame) -> dg.TableSchema:
    """The frame's columns and dtypes as a Dagster table schema."""
    return dg.TableSchema(
        columns=[dg.TableColumn(name=str(c), type=str(t)) for c, t in frame.dtypes.items()]
    )


#: Column of the participants table holding the exact FlowParticipant JSON that is sent.
BODY_COLUMN = "flow_participant"


def with_bodies(prepared: PreparedAudience, bodies: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The participants table as stored: identity columns plus the FlowParticipant JSON.

    Attribute and variable columns (``attr:firstName``...) are not SQL identifiers; they live
    inside the body, which is also exactly what the sync step sends.
    """
    frame = prepared.participants
    plain = [c for c in frame.columns if ":" not in str(c)]
    out = frame[plain].copy()
    out[BODY_COLUMN] = [orjson.dumps(b).decode() for b in bodies]
    return out


def sync_participants(participants: pd.DataFrame) -> list[SyncParticipant]:
    """The engine's input, read back from the stored participants table.

    ``profile_anchor`` (the Infobip profile the identity layer resolved each person to) rides
    along, so the identity ledger records the person's identifiers under that profile.
    """
    keys = participants["person_key"].astype(str).tolist()
    if "profile_anchor" in participants.columns:
        anchors = [None if pd.isna(a) else str(a) for a in participants["profile_anchor"]]
    else:
        anchors = [None] * len(keys)
    # The input rows behind each person: a person refused at send time is quarantined under
    # these row ids, like the rows preparation quarantined.
    if "source_rows" in participants.columns:
        rows = [tuple(str(r) for r in v) for v in participants["source_rows"]]
    else:
        rows = [()] * len(keys)
    return [
        SyncParticipant(person_key=k, body=orjson.loads(b), profile_anchor=a, source_rows=r)
        for k, b, a, r in zip(keys, participants[BODY_COLUMN], anchors, rows, strict=True)
    ]


def quarantine_rows(audience: str, partition: str, frame: pd.DataFrame) -> list[QuarantineRow]:
    """The quarantine frame as the engine's ``QuarantineRow`` records."""
    return [
        QuarantineRow(
            audience=audience,
            partition_key=partition,
            row_id=str(row_id),
            reason=str(reason),
            detail=None if detail is None or pd.isna(detail) else str(detail),
        )
        for row_id, reason, detail in zip(
            frame["row_id"], frame["reason"], frame.get("detail", [None] * len(frame)), strict=True
        )
    ]


def _masked_records(frame: pd.DataFrame, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` rows with every column but the row id, reason and detail masked.

    Control characters become U+FFFD (``printable``): a sample is for reading.
    """
    rows = []
    for record in frame.head(limit).to_dict(orient="records"):
        rows.append(
            {
                k: printable(v if k in _QUARANTINE_SHOWN else md.mask_identifier(v))
                if _present(v)
                else ""
                for k, v in record.items()
            }
        )
    return rows


def _present(value: object) -> bool:
    if value is None or is_listlike(value):
        return value is not None
    return not pd.isna(value)


def participants_metadata(rows_in: int, participants: pd.DataFrame) -> dict[str, Any]:
    """Metadata of the participants asset."""
    by_type = Counter(str(t) for t in participants.get("identify_by_type", []))
    return {
        "dagster/row_count": len(participants),
        md.key("rows_in"): rows_in,
        md.key("participants"): len(participants),
        md.key("participants_by_identify_by_type"): md.counts(by_type),
    }


def quarantine_metadata(quarantine: pd.DataFrame) -> dict[str, Any]:
    """Metadata of the quarantine asset: counts by reason and a masked sample."""
    reasons = Counter(str(r) for r in quarantine.get("reason", []))
    columns = [c for c in quarantine.columns if c != "detail"] + (
        ["detail"] if "detail" in quarantine.columns else []
    )
    return {
        "dagster/row_count": len(quarantine),
        md.key("quarantined"): len(quarantine),
        md.key("quarantined_by_reason"): md.counts(reasons),
        md.key("quarantine_sample"): md.markdown_table(
            _masked_records(quarantine, md.SAMPLE_ROWS), [str(c) for c in columns]
        ),
    }


def dry_run_observation(
    specs: AudienceSpecs,
    participants: Sequence[SyncParticipant],
    delivered: set[str],
    quarantine: pd.DataFrame,
    preview_rows: int,
) -> dg.AssetObservation:
    """What a real run would send, as an observation (nothing is materialized or sent)."""
    new = [p for p in participants if p.person_key not in delivered]
    preview = [md.mask_participant(p.body) for p in new[:preview_rows]]
    return dg.AssetObservation(
        asset_key=specs.flow_sync.key,
        metadata={
            md.key("dry_run"): True,
            md.key("campaign_id"): specs.audience.flow.campaign_id,
            md.key("would_send"): len(new),
            md.key("already_in_flow"): len(participants) - len(new),
            md.key("would_send_requests"): math.ceil(len(new) / _MAX_BATCH),
            md.key("quarantined"): len(quarantine),
            md.key("sample_payload"): dg.MetadataValue.json({"participants": preview}),
        },
    )


def sync_metadata(result: SyncResult, account: Mapping[str, str]) -> dict[str, Any]:
    """Metadata of the flow_sync asset (what this run sent and how fast)."""
    held = [
        {"batch_id": h.batch_id, "size": h.size, "state": h.state, "reason": h.reason}
        for h in result.held_batches
    ]
    return {
        md.key("campaign_id"): result.campaign_id,
        md.key("participants_in"): result.participants_in,
        md.key("already_delivered"): result.already_delivered,
        md.key("sent_requests"): result.batches_sent,
        md.key("batches_planned"): result.batches_planned,
        md.key("operation_ids"): dg.MetadataValue.json(list(result.operation_ids)),
        md.key("held_batches"): dg.MetadataValue.json(held),
        md.key("held"): result.held,
        md.key("duration_s"): round(result.duration_s, 3),
        md.key("participants_per_s"): round(result.participants_per_s, 1),
        md.key("reports_by_callback"): result.reports_by_callback,
        md.key("reports_by_polling"): result.reports_by_polling,
        # People the engine refused right before sending: since preparation, another audience
        # sent one of their identifiers for a different profile (they are quarantined).
        md.key("refused_at_sync"): len(result.refused_participants),
        md.key("refused_at_sync_by_reason"): md.counts(
            Counter(r.reason for r in result.refused_participants)
        ),
        md.key("refused_at_sync_sample"): md.markdown_table(
            [
                {"person_key": r.person_key_hint, "reason": r.reason, "detail": r.detail}
                for r in result.refused_participants[: md.SAMPLE_ROWS]
            ],
            ["person_key", "reason", "detail"],
        ),
        md.key("account"): dg.MetadataValue.json(dict(account)),
    }


def report_metadata(
    statuses: Sequence[StatusRow],
    quarantine: pd.DataFrame,
    result: SyncResult,
    status_table: str,
) -> dict[str, Any]:
    """Metadata of the flow_report asset: final statuses by status and reason, with samples.

    ``status_table`` names the ledger table where the engine persisted these statuses.
    """
    by_status = Counter(s.status for s in statuses)
    by_reason = Counter(s.error_reason for s in statuses if s.status == "REJECTED")
    rejected = [
        {
            "person_key": md.mask_identifier(r.person_key),
            "identify_type": r.identify_type,
            "identifier": r.identifier_hint,
            "error_reason": r.error_reason or "",
        }
        for r in result.rejected_samples[: md.SAMPLE_ROWS]
    ]
    metadata: dict[str, Any] = {
        "dagster/row_count": len(statuses),
        md.key("accepted"): by_status.get("ACCEPTED", 0),
        md.key("rejected"): by_status.get("REJECTED", 0),
        md.key("pending"): by_status.get("PENDING", 0),
        md.key("held"): by_status.get("HELD", 0),
        md.key("delivered"): sum(1 for s in statuses if s.delivered),
        md.key("by_status"): md.counts(by_status),
        md.key("rejected_by_reason"): md.counts({str(k): v for k, v in by_reason.items()}),
        # Every quarantined input row of the run: preparation's and the engine's refusals.
        md.key("quarantined"): sum(result.quarantined_by_reason.values()),
        md.key("quarantined_by_reason"): md.counts(dict(result.quarantined_by_reason)),
        md.key("rejected_sample"): md.markdown_table(
            rejected, ["person_key", "identify_type", "identifier", "error_reason"]
        ),
        md.key("quarantine_sample"): md.markdown_table(
            _masked_records(quarantine, md.SAMPLE_ROWS),
            [str(c) for c in quarantine.columns],
        ),
    }
    metadata[md.key("status_table")] = status_table
    return metadata


@dataclass(frozen=True, slots=True)
class SentEvidence:
    """What the ledger says left for this audience, for the safety checks.

    Attributes:
        owners: (identifier kind, comparable identifier) -> person keys it was sent under.
        sent_person_keys: Person keys in batches whose body may have left.
        leaked_rows: Quarantined input row ids found among the sent participants' rows.
    """

    owners: Mapping[tuple[str, str], frozenset[str]]
    sent_person_keys: frozenset[str]
    leaked_rows: frozenset[str]
    account_conflicts: tuple[tuple[str, str], ...] = ()

    @classmethod
    def collect(
        cls,
        ledger: LedgerStore,
        audience: AudienceConfig,
        partition: str,
        participants: pd.DataFrame,
        quarantine: pd.DataFrame,
    ) -> SentEvidence:
        """Read the audience's sent batch members and compare them with the prepared tables."""
        batches = ledger.batches(audience.name, partition, audience.flow.campaign_id)
        left = [b.batch_id for b in batches if b.state in _MAY_HAVE_LEFT]
        owners: dict[tuple[str, str], set[str]] = defaultdict(set)
        sent: set[str] = set()
        comparable = rules.comparable  # the form Infobip matches identifiers in
        for member in ledger.batch_members(left) if left else []:
            ident = comparable(member.kind, member.identifier)
            owners[(member.kind, ident)].add(member.person_key)
            sent.add(member.person_key)
        sent_rows: set[str] = set()
        if "source_rows" in participants.columns:
            mask = participants["person_key"].astype(str).isin(sent)
            for rows in participants.loc[mask, "source_rows"]:
                sent_rows.update(str(r) for r in (rows if is_listlike(rows) else [rows]))
        quarantined = {str(r) for r in quarantine.get("row_id", [])}
        return cls(
            owners={k: frozenset(v) for k, v in owners.items()},
            sent_person_keys=frozenset(sent),
            leaked_rows=frozenset(sent_rows & quarantined),
            account_conflicts=tuple(_account_conflicts(ledger)),
        )

    def conflicts(self) -> list[tuple[str, str]]:
        """Identifiers sent under more than one person or profile, as (kind, masked identifier).

        Two views: within this audience, an identifier under two person keys; across every
        audience of the ledger (the account), an identifier recorded under two profile anchors,
        which is what would make Infobip merge.
        """
        local = [
            (kind, md.mask_identifier(ident))
            for (kind, ident), keys in sorted(self.owners.items())
            if len(keys) > 1
        ]
        return sorted({*local, *self.account_conflicts})


def _account_conflicts(ledger: LedgerStore) -> list[tuple[str, str]]:
    """Identifiers the whole ledger records under two or more profile anchors (masked).

    Aggregated in SQL (the ledger may hold millions of identifiers), in the rules' comparable
    form so that two spellings of one e-mail address count as one identifier.
    """
    if not isinstance(ledger, SqlLedgerStore):
        return []
    tables = ledger.table_names()
    states = ", ".join("?" for _ in _MAY_HAVE_LEFT)
    anchor = "COALESCE(m.profile_anchor, m.person_key)"
    ident = rules.comparable_sql("m.kind", "m.identifier")
    rows = ledger.warehouse.fetch_all(
        f"SELECT m.kind, {ident} FROM {tables['batch_members']} m "  # noqa: S608
        f"JOIN {tables['outbox']} o ON o.batch_id = m.batch_id WHERE o.state IN ({states}) "
        f"GROUP BY 1, 2 HAVING COUNT(DISTINCT {anchor}) > 1 "
        "ORDER BY 1, 2 LIMIT 1000",
        [state.value for state in sorted(_MAY_HAVE_LEFT, key=str)],
    )
    return [(str(kind), md.mask_identifier(str(ident))) for kind, ident in rows]


def check_results(
    specs: AudienceSpecs,
    statuses: Sequence[StatusRow],
    result: SyncResult,
    evidence: SentEvidence,
) -> list[dg.AssetCheckResult]:
    """Evaluate the four checks of the flow report."""
    key = specs.flow_report.key
    total = len(statuses)
    rejected = sum(1 for s in statuses if s.status == "REJECTED" and not s.delivered)
    rate = rejected / total if total else 0.0
    limit = specs.audience.report.max_rejection_rate
    unresolved = Counter(s.status for s in statuses if s.status in ("PENDING", "HELD"))
    conflicts = evidence.conflicts()
    leaked = sorted(evidence.leaked_rows)
    return [
        dg.AssetCheckResult(
            asset_key=key,
            check_name=CHECK_REJECTION_RATE,
            passed=rate <= limit,
            metadata={"rejection_rate": round(rate, 4), "limit": limit, "rejected": rejected},
        ),
        dg.AssetCheckResult(
            asset_key=key,
            check_name=CHECK_NOTHING_PENDING,
            passed=not unresolved and not result.held_batches,
            metadata={
                "pending": unresolved.get("PENDING", 0),
                "held": unresolved.get("HELD", 0),
                "held_batches": len(result.held_batches),
            },
        ),
        dg.AssetCheckResult(
            asset_key=key,
            check_name=CHECK_NO_CONFLICT_SENT,
            passed=not conflicts,
            metadata={
                "identifiers_sent": len(evidence.owners),
                "conflicts": len(conflicts),
                "conflict_sample": dg.MetadataValue.json([list(c) for c in conflicts[:10]]),
            },
        ),
        dg.AssetCheckResult(
            asset_key=key,
            check_name=CHECK_NO_QUARANTINE_LEAK,
            passed=not leaked,
            metadata={
                "sent_participants": len(evidence.sent_person_keys),
                "leaked_rows": len(leaked),
                "leaked_sample": dg.MetadataValue.json(leaked[:10]),
            },
        ),
    ]
