"""The audience's asset checks, as steps of their own, evaluated on what is recorded.

Two check definitions per audience, neither of which can send anything (they get the warehouse
resource only, never the Moments one):

- ``<audience>__prepare_checks``: ``every_row_accounted_for`` on the participants, from the
  stored participants and quarantine tables. Blocking: when it fails, the sync does not run.
- ``<audience>__report_checks``: the four checks of the flow report, from the ledger (stored
  statuses, outbox states, sent batch members, the account-wide identifier conflicts) and the
  stored participants and quarantine tables.

Executed alone (the UI's "Execute" on a check, ``AssetSelection.checks_for_assets``) or after
the assets in one run, they read the same records and give the same answers. Nothing here
reaches around the ``LedgerStore`` protocol: the ledger is only read, through its methods.
A partitioned audience's checks evaluate each partition of the run (every stored partition when
executed alone, with no partition chosen) and pass only if every one passes.
"""

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import dagster as dg
import pandas as pd
from dagster import AssetCheckExecutionContext

from moments_pipeline.dagster import _accounting, _partitions, _tables
from moments_pipeline.dagster import _metadata as md
from moments_pipeline.dagster._asset_metadata import FlowOutcomes
from moments_pipeline.dagster._resources import WarehouseResource
from moments_pipeline.dagster._specs import (
    CHECK_NO_CONFLICT_SENT,
    CHECK_NO_QUARANTINE_LEAK,
    CHECK_NOTHING_PENDING,
    CHECK_REJECTION_RATE,
    UNPARTITIONED,
    AudienceSpecs,
)
from moments_pipeline.identity import rules
from moments_pipeline.sync import (
    MAY_HAVE_LEFT,
    NEVER_LEFT,
    BatchRecord,
    BatchState,
    LedgerStore,
    SqlLedgerStore,
    StatusRow,
)
from moments_pipeline.warehouse import Warehouse

#: Batch states that leave their people neither delivered nor refused: never left (PLANNED,
#: CLAIMED: the next run sends them), or may have left without a final answer (SENDING, HELD).
_UNRESOLVED = NEVER_LEFT | frozenset({BatchState.SENDING, BatchState.HELD})
#: Account-wide conflicts read from the ledger (the check fails on the first one).
_CONFLICT_LIMIT = 1000
_SAMPLE = 10


@dataclass(frozen=True, slots=True)
class SentEvidence:
    """What the ledger says left, for the safety checks.

    Attributes:
        owners: (identifier kind, comparable identifier) -> person keys this audience sent it
            under.
        sent_person_keys: This audience's person keys in batches whose body may have left.
        leaked_rows: Quarantined input row ids found among the sent participants' rows.
        account_conflicts: (kind, masked identifier) the whole ledger records under two or
            more profiles (``LedgerStore.identifier_conflicts``).
    """

    owners: Mapping[tuple[str, str], frozenset[str]]
    sent_person_keys: frozenset[str]
    leaked_rows: frozenset[str]
    account_conflicts: tuple[tuple[str, str], ...] = ()

    @classmethod
    def collect(
        cls,
        ledger: LedgerStore,
        specs: AudienceSpecs,
        participants: pd.DataFrame,
        quarantine: pd.DataFrame,
        batches: Sequence[BatchRecord] | None = None,
        partition: str = UNPARTITIONED,
        account_conflicts: Sequence[tuple[str, str]] | None = None,
    ) -> "SentEvidence":
        """Read the audience's sent batch members and compare them with the prepared tables.

        ``account_conflicts`` (masked, as read once for a check step over many partitions)
        spares reading the account-wide view again; None reads it.
        """
        audience = specs.audience
        if batches is None:
            batches = ledger.batches(audience.name, partition, audience.flow.campaign_id)
        left = [b.batch_id for b in batches if b.state in MAY_HAVE_LEFT]
        owners: dict[tuple[str, str], set[str]] = defaultdict(set)
        sent: set[str] = set()
        for member in ledger.batch_members(left) if left else []:
            # The form Infobip matches identifiers in.
            ident = rules.comparable(member.kind, member.identifier)
            owners[(member.kind, ident)].add(member.person_key)
            sent.add(member.person_key)
        sent_rows: set[str] = set()
        if "source_rows" in participants.columns:
            mask = participants["person_key"].astype(str).isin(sent)
            for rows in participants.loc[mask, "source_rows"]:
                sent_rows.update(str(r) for r in (rows if _tables.is_listlike(rows) else [rows]))
        quarantined = {str(r) for r in quarantine.get("row_id", [])}
        account = account_conflicts
        if account is None:
            account = [
                (kind, md.mask_identifier(ident))
                for kind, ident in ledger.identifier_conflicts(_CONFLICT_LIMIT)
            ]
        return cls(
            owners={k: frozenset(v) for k, v in owners.items()},
            sent_person_keys=frozenset(sent),
            leaked_rows=frozenset(sent_rows & quarantined),
            account_conflicts=tuple(account),
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


@dataclass(frozen=True, slots=True)
class RecordedSync:
    """What the ledger and the stored tables record about one audience's flow.

    Attributes:
        statuses: Stored statuses of the audience's current participants.
        unresolved_batches: The audience's outbox batches neither reported nor refused.
        evidence: What left, for the safety checks.
        participants: Participants in the stored table.
    """

    statuses: Sequence[StatusRow]
    unresolved_batches: Sequence[BatchRecord]
    evidence: SentEvidence
    participants: int

    @classmethod
    def collect(
        cls,
        warehouse: Warehouse,
        specs: AudienceSpecs,
        partition: str = UNPARTITIONED,
        account_conflicts: Sequence[tuple[str, str]] | None = None,
    ) -> "RecordedSync | None":
        """Read the records (of one partition); None when there are none yet."""
        tables, audience = specs.tables, specs.audience
        ledger = SqlLedgerStore(warehouse)
        needed = [tables.participants, tables.quarantine, ledger.table_names()["outbox"]]
        if not all(warehouse.table_exists(t) for t in needed):
            return None
        participants = _partitions.read_partition(
            warehouse,
            tables.participants,
            partition,
            json_columns=_tables.PARTICIPANTS_JSON_COLUMNS,
            columns=["person_key", "source_rows"],
        )
        quarantine = _partitions.read_partition(
            warehouse, tables.quarantine, partition, json_columns=(), columns=["row_id"]
        )
        campaign = audience.flow.campaign_id
        batches = ledger.batches(audience.name, partition, campaign)
        keys = participants["person_key"].astype(str).tolist()
        return cls(
            statuses=ledger.statuses(campaign, keys),
            unresolved_batches=[b for b in batches if b.state in _UNRESOLVED],
            evidence=SentEvidence.collect(
                ledger, specs, participants, quarantine, batches, partition, account_conflicts
            ),
            participants=len(keys),
        )


def report_check_results(specs: AudienceSpecs, recorded: RecordedSync) -> list[dg.AssetCheckResult]:
    """Evaluate the four checks of the flow report on the records."""
    key = specs.flow_report.key
    outcomes = FlowOutcomes.of(recorded.statuses)
    # People already in the flow are delivered: the same count as ``moments/rejected``.
    rate = outcomes.rejected / outcomes.total if outcomes.total else 0.0
    limit = specs.audience.report.max_rejection_rate
    unresolved = recorded.unresolved_batches
    conflicts = recorded.evidence.conflicts()
    leaked = sorted(recorded.evidence.leaked_rows)
    return [
        dg.AssetCheckResult(
            asset_key=key,
            check_name=CHECK_REJECTION_RATE,
            passed=rate <= limit,
            metadata={
                "rejection_rate": round(rate, 4),
                "limit": limit,
                "rejected": outcomes.rejected,
                "already_in_flow": outcomes.already_in_flow,
            },
        ),
        dg.AssetCheckResult(
            asset_key=key,
            check_name=CHECK_NOTHING_PENDING,
            passed=not outcomes.pending and not outcomes.held and not unresolved,
            metadata={
                "pending": outcomes.pending,
                "held": outcomes.held,
                "held_batches": len(unresolved),
                "held_batch_sample": dg.MetadataValue.json(
                    [
                        {"batch_id": b.batch_id, "state": b.state.value, "reason": b.reason}
                        for b in unresolved[:_SAMPLE]
                    ]
                ),
                # Participants with no stored status yet (not synced, or refused at send time).
                "without_status": recorded.participants - len(recorded.statuses),
            },
        ),
        dg.AssetCheckResult(
            asset_key=key,
            check_name=CHECK_NO_CONFLICT_SENT,
            passed=not conflicts,
            metadata={
                "identifiers_sent": len(recorded.evidence.owners),
                "conflicts": len(conflicts),
                "conflict_sample": dg.MetadataValue.json([list(c) for c in conflicts[:_SAMPLE]]),
            },
        ),
        dg.AssetCheckResult(
            asset_key=key,
            check_name=CHECK_NO_QUARANTINE_LEAK,
            passed=not leaked,
            metadata={
                "sent_participants": len(recorded.evidence.sent_person_keys),
                "leaked_rows": len(leaked),
                "leaked_sample": dg.MetadataValue.json(leaked[:_SAMPLE]),
            },
        ),
    ]


def _nothing_recorded(spec: dg.AssetCheckSpec, what: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=spec.asset_key,
        check_name=spec.name,
        passed=False,
        description=f"nothing recorded yet: materialize {what} first",
    )


def _check_scopes(
    context: AssetCheckExecutionContext, specs: AudienceSpecs, warehouse: Warehouse
) -> list[str]:
    """The partitions to check: the run's, or every one the participants table holds."""
    if specs.audience.partition is None:
        return [UNPARTITIONED]
    stored = _partitions.stored_partitions(warehouse, specs.tables.participants)
    return _partitions.partition_scopes(context, specs.audience, stored)


def build_audience_checks(specs: AudienceSpecs) -> list[dg.AssetChecksDefinition]:
    """The prepare and the flow-report check definitions of one audience."""
    return [_prepare_checks(specs), _report_checks(specs)]


def _prepare_checks(specs: AudienceSpecs) -> dg.AssetChecksDefinition:
    @dg.multi_asset_check(specs=list(specs.prepare_checks), name=specs.op_name("prepare_checks"))
    def _checks(
        context: AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> Iterator[dg.AssetCheckResult]:
        tables = specs.tables
        with warehouse.open() as wh:
            needed = (tables.source_snapshot, tables.participants, tables.quarantine)
            scopes = _check_scopes(context, specs, wh) if all(map(wh.table_exists, needed)) else []
            if not scopes:
                yield from (_nothing_recorded(s, "the participants") for s in specs.prepare_checks)
                return
            results = {
                p: [
                    _accounting.accounting_check(
                        specs, _accounting.RecordedRows.collect(wh, specs, p)
                    )
                ]
                for p in scopes
            }
        yield from _partitions.range_check_results(results)

    return _checks


def _report_checks(specs: AudienceSpecs) -> dg.AssetChecksDefinition:
    @dg.multi_asset_check(
        specs=list(specs.checks),
        name=specs.op_name("report_checks"),
        # Each check can be executed on its own (the UI offers it): only those selected are
        # evaluated and yielded.
        can_subset=True,
    )
    def _checks(
        context: AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> Iterator[dg.AssetCheckResult]:
        wanted = {k.name for k in context.selected_asset_check_keys}
        per_partition: dict[str, list[dg.AssetCheckResult]] = {}
        with warehouse.open() as wh:
            # The account-wide conflicts are one view for every partition: read them once.
            account: Sequence[tuple[str, str]] | None = None
            for partition in _check_scopes(context, specs, wh):
                recorded = RecordedSync.collect(wh, specs, partition, account)
                if recorded is None:
                    per_partition = {}
                    break
                per_partition[partition] = report_check_results(specs, recorded)
                account = recorded.evidence.account_conflicts
        if not per_partition:
            results = [_nothing_recorded(s, "the flow report") for s in specs.checks]
        else:
            results = _partitions.range_check_results(per_partition)
        yield from (r for r in results if r.check_name in wanted)

    return _checks
