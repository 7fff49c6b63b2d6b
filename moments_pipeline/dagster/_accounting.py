"""Row accounting of the prepare step, computed from what the warehouse tables record.

After preparation writes the participants, quarantine and dropped-values tables, they are read
back (only the row-id columns) and reconciled with the source snapshot: every source row must
be in exactly one participant's ``source_rows`` or in quarantine. The numbers go to the
participants' metadata (``moments/rows_in``, ``moments/rows_in_participants``,
``moments/rows_quarantined``, ``moments/dropped`` and ``moments/dropped/<REASON>``), and the
``every_row_accounted_for`` check asserts them, so a lost or doubled row fails visibly.
Pure functions of the recorded rows, plus ``collect`` that reads them (one partition's rows of
a partitioned audience).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pandas as pd

from moments_pipeline.config import PARTITION_COLUMN
from moments_pipeline.dagster import _metadata as md
from moments_pipeline.dagster import _partitions, _tables
from moments_pipeline.dagster._specs import CHECK_ROWS_ACCOUNTED, UNPARTITIONED, AudienceSpecs
from moments_pipeline.identity import DroppedValueReason
from moments_pipeline.warehouse import Warehouse, quote_identifier, quote_table

_SAMPLE = 10


@dataclass(frozen=True, slots=True)
class RecordedRows:
    """What the tables of one prepare run record.

    Attributes:
        rows_in: Rows of the source snapshot.
        participant_rows: ``source_rows`` of each stored participant.
        quarantined: ``(row_id, reason)`` of each stored quarantine row.
        dropped_by_reason: Stored dropped values counted by reason.
    """

    rows_in: int
    participant_rows: Sequence[Sequence[str]]
    quarantined: Sequence[tuple[str, str]]
    dropped_by_reason: dict[str, int]

    @classmethod
    def collect(
        cls, warehouse: Warehouse, specs: AudienceSpecs, partition: str = UNPARTITIONED
    ) -> RecordedRows:
        """Read the counts and row ids back from the audience's tables (one partition's)."""
        tables = specs.tables
        # A partitioned audience's tables hold every day: count this partition's rows only.
        scope, params = "", []
        if partition != UNPARTITIONED:
            scope, params = f" WHERE {quote_identifier(PARTITION_COLUMN)} = ?", [partition]
        (rows_in,) = warehouse.fetch_all(
            f"SELECT count(*) FROM {quote_table(tables.source_snapshot)}{scope}",  # noqa: S608
            params,
        )[0]
        participants = _partitions.read_partition(
            warehouse,
            tables.participants,
            partition,
            json_columns=_tables.PARTICIPANTS_JSON_COLUMNS,
            columns=["source_rows"],
        )
        quarantine = _partitions.read_partition(
            warehouse, tables.quarantine, partition, json_columns=(), columns=["row_id", "reason"]
        )
        dropped = warehouse.fetch_all(
            f"SELECT reason, count(*) FROM {quote_table(tables.dropped_values)}{scope} "  # noqa: S608
            "GROUP BY reason",
            params,
        )
        return cls(
            rows_in=int(rows_in),
            participant_rows=[[str(r) for r in rows] for rows in participants["source_rows"]],
            quarantined=list(
                zip(
                    quarantine["row_id"].astype(str).tolist(),
                    quarantine["reason"].astype(str).tolist(),
                    strict=True,
                )
            ),
            dropped_by_reason={str(reason): int(count) for reason, count in dropped},
        )


def problems(recorded: RecordedRows) -> list[str]:
    """Everything that does not reconcile (empty when every row is accounted for)."""
    found: list[str] = []
    sent = Counter(r for rows in recorded.participant_rows for r in rows)
    n_sent = sum(sent.values())
    n_quarantined = len(recorded.quarantined)
    if recorded.rows_in != n_sent + n_quarantined:
        found.append(
            f"{recorded.rows_in} source rows but {n_sent} in participants + "
            f"{n_quarantined} quarantined"
        )
    twice = sorted(r for r, k in sent.items() if k > 1)
    if twice:
        found.append(f"row ids in two participants: {twice[:_SAMPLE]}")
    quarantined_ids = Counter(r for r, _ in recorded.quarantined)
    both = sorted(set(sent) & set(quarantined_ids))
    if both:
        found.append(f"row ids both sent and quarantined: {both[:_SAMPLE]}")
    # Even rows sharing a duplicated id are recorded under distinct ids (``<id>#<position>``).
    repeated = sorted(r for r, k in quarantined_ids.items() if k > 1)
    if repeated:
        found.append(f"row ids quarantined twice: {repeated[:_SAMPLE]}")
    return found


def accounting_metadata(recorded: RecordedRows, dropped_table: str) -> dict[str, Any]:
    """The accounting keys of the participants' metadata (every dropped reason, zeros too)."""
    dropped = {reason.value: 0 for reason in DroppedValueReason}
    dropped.update(recorded.dropped_by_reason)
    metadata: dict[str, Any] = {
        md.key("rows_in"): recorded.rows_in,
        md.key("rows_in_participants"): sum(len(rows) for rows in recorded.participant_rows),
        md.key("rows_quarantined"): len(recorded.quarantined),
        md.key("dropped"): sum(dropped.values()),
        md.key("dropped_values_table"): dropped_table,
    }
    for reason, count in sorted(dropped.items()):
        metadata[md.key(f"dropped/{reason}")] = count
    return metadata


def accounting_check(specs: AudienceSpecs, recorded: RecordedRows) -> dg.AssetCheckResult:
    """``every_row_accounted_for`` on the participants asset, from the recorded rows."""
    found = problems(recorded)
    return dg.AssetCheckResult(
        asset_key=specs.participants.key,
        check_name=CHECK_ROWS_ACCOUNTED,
        passed=not found,
        metadata={
            "rows_in": recorded.rows_in,
            "rows_in_participants": sum(len(rows) for rows in recorded.participant_rows),
            "rows_quarantined": len(recorded.quarantined),
            "problems": dg.MetadataValue.json(found),
        },
    )


def dropped_sample(dropped: pd.DataFrame) -> dg.MetadataValue:
    """A few dropped values (already masked by preparation) as a markdown table."""
    columns = ["row_id", "column_name", "value_masked", "reason", "detail"]
    rows = [
        {c: _tables.printable(r.get(c, "")) for c in columns}
        for r in dropped.head(md.SAMPLE_ROWS).to_dict(orient="records")
    ]
    return md.markdown_table(rows, columns)
