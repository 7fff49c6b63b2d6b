"""Daily partitions of an audience: the definition, the keys of a run, and per-partition tables.

An audience with ``partition: {date_column, start_date, timezone}`` gets a
``DailyPartitionsDefinition`` on all five assets; each partition is the source rows of one day,
filtered in the warehouse (``sync.source_day``). A range (a UI backfill,
``dagster asset materialize --partition-range``) runs as ONE run (``BackfillPolicy.single_run``):
each step iterates ``context.partition_keys`` and syncs day after day through the ledger, whose
batches are keyed by partition. One run means one Dagster run overhead, one process holding the
account's rate budget and the DuckDB file, and one lease wait, instead of 30 runs queueing for
the same ledger lease; the CLI accepts ranges only for single-run assets.

The stored tables of a partitioned audience carry the partition key in ``PARTITION_COLUMN`` and
a step replaces only its partition's rows (delete + append in one transaction). An unpartitioned
audience keeps its tables as before, without that column, replaced whole. A person another
partition sent without a final answer yet is held back (``hold_back_unresolved``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import pandas as pd

from moments_pipeline.config import PARTITION_COLUMN, AudienceConfig
from moments_pipeline.dagster import _metadata as md
from moments_pipeline.dagster import _tables
from moments_pipeline.dagster._specs import UNPARTITIONED
from moments_pipeline.sync import LedgerStore, ParticipantStatus, SyncParticipant
from moments_pipeline.warehouse import Warehouse, quote_identifier, quote_table

__all__ = [
    "PARTITION_COLUMN",
    "UNRESOLVED_ELSEWHERE",
    "backfill_policy",
    "hold_back_unresolved",
    "partition_scopes",
    "partitions_def",
    "range_check_results",
    "range_metadata",
    "read_partition",
    "run_partitions",
    "stored_partitions",
    "write_partition",
]


def partitions_def(audience: AudienceConfig) -> dg.DailyPartitionsDefinition | None:
    """The audience's daily partitions (None when unpartitioned)."""
    partition = audience.partition
    if partition is None:
        return None
    return dg.DailyPartitionsDefinition(
        start_date=partition.start_date.isoformat(), timezone=partition.timezone
    )


def backfill_policy(audience: AudienceConfig) -> dg.BackfillPolicy | None:
    """A range of days is one run (see the module docstring); None when unpartitioned."""
    return dg.BackfillPolicy.single_run() if audience.partition is not None else None


def run_partitions(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext, audience: AudienceConfig
) -> list[str]:
    """The partitions a step works on, oldest first: the run's days, or ``[UNPARTITIONED]``."""
    if audience.partition is None:
        return [UNPARTITIONED]
    return sorted(context.partition_keys)


def partition_scopes(
    context: dg.AssetCheckExecutionContext, audience: AudienceConfig, stored: Sequence[str]
) -> list[str]:
    """The partitions a check evaluates: the run's days, else every stored one.

    A check executed alone (from the UI, with no partition chosen) reads every partition its
    tables hold, so it is never green for lack of looking.
    """
    if audience.partition is None:
        return [UNPARTITIONED]
    if context.has_partition_key or context.has_partition_key_range:
        return sorted(context.partition_keys)
    return sorted(stored)


def stored_partitions(warehouse: Warehouse, table: str) -> list[str]:
    """The partition keys a partitioned audience's table holds (none when it does not exist)."""
    if not warehouse.table_exists(table):
        return []
    column = quote_identifier(PARTITION_COLUMN)
    rows = warehouse.fetch_all(f"SELECT DISTINCT {column} FROM {quote_table(table)}")  # noqa: S608
    return sorted(str(r[0]) for r in rows)


def write_partition(
    warehouse: Warehouse,
    table: str,
    frame: pd.DataFrame,
    partition: str,
    *,
    json_columns: Sequence[str],
) -> None:
    """Store ``frame`` as the rows of ``partition`` only (the whole table when unpartitioned).

    Other partitions' rows are untouched, also against a concurrent run writing the same table:
    the delete and the append are one transaction, one writer at a time (a process lock, and on
    PostgreSQL a table lock that only writers wait for; else two runs replacing one day could
    both append it). When the stored
    column types cannot take the new rows (an integer column with NULLs on this day only), the
    table is rewritten, in one transaction too, with the merged rows (pandas widens the types).
    A transaction that loses against a concurrent writer is tried again.
    """
    if partition == UNPARTITIONED:
        _tables.write_table(warehouse, table, frame, json_columns=json_columns)
        return
    out = _tables.storable_frame(frame, json_columns)
    out[PARTITION_COLUMN] = partition
    for attempt in range(_WRITE_ATTEMPTS):
        try:
            with _WRITERS, warehouse.transaction():
                if attempt % 2 == 0:
                    _replace_rows(warehouse, table, out, partition)
                else:
                    _rewrite_merged(warehouse, table, out, partition)
            return
        except Exception:  # rolled back; the last attempt raises it
            if attempt == _WRITE_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


#: Attempts of a partition write: a plain replace and a merged rewrite, alternately.
_WRITE_ATTEMPTS = 6
#: Partition writes of this process, one at a time. DuckDB has no table lock, and under its
#: snapshot isolation two transactions that both find a day empty would both append it; a file
#: has one writing process, so serializing this process's writers is enough. (PostgreSQL
#: writers of any process wait for each other on the table lock.)
_WRITERS = threading.Lock()


def _lock_writers(warehouse: Warehouse, table: str) -> None:
    # SHARE ROW EXCLUSIVE conflicts with itself and with writes, not with reads.
    if warehouse.dialect == "postgres" and warehouse.table_exists(table):
        warehouse.execute(f"LOCK TABLE {quote_table(table)} IN SHARE ROW EXCLUSIVE MODE")


def _replace_rows(warehouse: Warehouse, table: str, out: pd.DataFrame, partition: str) -> None:
    _lock_writers(warehouse, table)
    if warehouse.table_exists(table):
        column = quote_identifier(PARTITION_COLUMN)
        warehouse.execute(
            f"DELETE FROM {quote_table(table)} WHERE {column} = ?",  # noqa: S608
            [partition],
        )
    warehouse.write_frame(table, out, mode="append")


def _rewrite_merged(warehouse: Warehouse, table: str, out: pd.DataFrame, partition: str) -> None:
    _lock_writers(warehouse, table)
    if not warehouse.table_exists(table):
        warehouse.write_frame(table, out, mode="replace")
        return
    kept = warehouse.read_table(table)
    kept = kept[kept[PARTITION_COLUMN].astype(str) != partition]
    merged = pd.concat([kept, out], ignore_index=True) if len(kept) else out
    warehouse.write_frame(table, merged, mode="replace")


def read_partition(
    warehouse: Warehouse,
    table: str,
    partition: str,
    *,
    json_columns: Sequence[str],
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The rows of one partition as written by ``write_partition``, without its column."""
    if partition == UNPARTITIONED:
        return _tables.read_table(warehouse, table, json_columns=json_columns, columns=columns)
    cols = "*" if columns is None else ", ".join(quote_identifier(c) for c in columns)
    frame = warehouse.read_query(
        f"SELECT {cols} FROM {quote_table(table)} "  # noqa: S608 - validated names
        f"WHERE {quote_identifier(PARTITION_COLUMN)} = ?",
        [partition],
    )
    frame = frame.drop(columns=[PARTITION_COLUMN], errors="ignore").reset_index(drop=True)
    return _tables.decode_json_columns(frame, json_columns)


def range_metadata(per_partition: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The metadata of a step over ``per_partition`` (partition -> that partition's metadata).

    One partition: its metadata as it is. A range: every count summed (keys whose values are
    integers in each partition), plus ``moments/partitions``, each partition's numbers (counts,
    durations, rates), so a backfill's materialization says what each day did. Other values
    (samples, ids) are per partition only and are left to single-partition runs.
    """
    if len(per_partition) == 1:
        return dict(next(iter(per_partition.values())))
    numbers: dict[str, dict[str, int | float]] = {
        partition: {k: v for k, v in meta.items() if _is_number(v)}
        for partition, meta in per_partition.items()
    }
    counts = [{k for k, v in n.items() if isinstance(v, int)} for n in numbers.values()]
    shared = set.intersection(*counts) if counts else set()
    totals = {k: sum(int(n[k]) for n in numbers.values()) for k in sorted(shared)}
    return {
        **totals,
        md.key("partition_count"): len(per_partition),
        md.key("partitions"): dg.MetadataValue.json(numbers),
    }


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def range_check_results(
    per_partition: Mapping[str, Sequence[dg.AssetCheckResult]],
) -> list[dg.AssetCheckResult]:
    """One result per check over several partitions: passed only if it passed in every one.

    The metadata sums the counts and names the partitions where the check failed.
    """
    if len(per_partition) == 1:
        return list(next(iter(per_partition.values())))
    by_check: dict[str, list[tuple[str, dg.AssetCheckResult]]] = {}
    for partition, evaluated in per_partition.items():
        for result in evaluated:
            by_check.setdefault(str(result.check_name), []).append((partition, result))
    merged = []
    for name, results in by_check.items():
        failed = [p for p, r in results if not r.passed]
        first = results[0][1]
        meta = range_metadata({p: _plain(r.metadata) for p, r in results})
        meta[md.key("failed_partitions")] = dg.MetadataValue.json(failed)
        merged.append(
            dg.AssetCheckResult(
                asset_key=first.asset_key,
                check_name=name,
                passed=not failed,
                description=f"failed in partition(s) {', '.join(failed[:10])}" if failed else None,
                metadata=meta,
            )
        )
    return merged


def _plain(metadata: Mapping[str, Any]) -> dict[str, Any]:
    # Check results hold MetadataValue objects: counts come back as their int values.
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        raw = getattr(value, "value", value)
        out[key] = raw if _is_number(raw) else value
    return out


#: Quarantine reason of a person whose send from another partition (or audience) of the same
#: flow has no final answer yet: sending them again could put them in the flow twice.
UNRESOLVED_ELSEWHERE = "SEND_UNRESOLVED_ELSEWHERE"
_UNRESOLVED_STATUSES = frozenset({ParticipantStatus.PENDING.value, ParticipantStatus.HELD.value})


def hold_back_unresolved(
    ledger: LedgerStore,
    audience: AudienceConfig,
    partition: str,
    to_send: Sequence[SyncParticipant],
    quarantine: pd.DataFrame,
) -> tuple[list[SyncParticipant], pd.DataFrame]:
    """Keep back the people another partition sent whose answer is not final (PENDING, HELD).

    The engine takes over only its own partition's batches; a person of two days whose first
    send is still unresolved would otherwise be sent again. They are quarantined for this run
    with the reason and where they were sent (a later run, once that send is resolved, counts
    them as delivered or plans them again).
    """
    keys = [p.person_key for p in to_send]
    scope = (audience.name, partition)
    elsewhere = {
        s.person_key: s
        for s in ledger.statuses(audience.flow.campaign_id, keys)
        if s.status in _UNRESOLVED_STATUSES and (s.audience, s.partition_key) != scope
    }
    if not elsewhere:
        return list(to_send), quarantine
    keep = [p for p in to_send if p.person_key not in elsewhere]
    rows = [
        {
            "row_id": row_id,
            "reason": UNRESOLVED_ELSEWHERE,
            "detail": f"sent by audience {s.audience!r} partition {s.partition_key or '-'} "
            f"(batch {s.batch_id}), status {s.status}: not sent again until that is resolved",
        }
        for p in to_send
        if (s := elsewhere.get(p.person_key)) is not None
        for row_id in p.source_rows
    ]
    return keep, pd.concat([quarantine, pd.DataFrame(rows)], ignore_index=True)
