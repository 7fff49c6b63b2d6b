"""The translator: a pure function from an audience definition to Dagster asset and check specs.

Like the translators of dagster-dlt and dagster-sling, this module decides names, keys, groups,
kinds, owners, tags, descriptions (the YAML's ``description`` first) and code references (to the
YAML file and line it is given) and nothing else: no I/O, no resources, no execution. Every audience
becomes five assets in a group named after it, keyed ``<audience>/<step>``, plus asset checks
on its flow report and the row accounting check on its participants (``_checks`` evaluates
them in steps of their own). The table names the
assets write to are derived here too, so the keys, the UI and the warehouse agree.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster._core.definitions.metadata.source_code import CodeReferencesMetadataSet

from moments_pipeline.config import LEDGER_CONNECTION, AudienceConfig

#: Prefix of every metadata key this package writes (Dagster's convention: namespaced keys).
METADATA_PREFIX = "moments/"

#: Partition key the engine records for unpartitioned audiences.
UNPARTITIONED = ""

SOURCE = "source"
PARTICIPANTS = "participants"
QUARANTINE = "quarantine"
FLOW_SYNC = "flow_sync"
FLOW_REPORT = "flow_report"

CHECK_REJECTION_RATE = "rejection_rate_within_threshold"
CHECK_NOTHING_PENDING = "nothing_left_pending"
CHECK_NO_CONFLICT_SENT = "no_conflicting_identifier_sent"
CHECK_NO_QUARANTINE_LEAK = "no_quarantined_row_sent"
CHECK_ROWS_ACCOUNTED = "every_row_accounted_for"


@dataclass(frozen=True, slots=True)
class AudienceTables:
    """Warehouse tables the assets of one audience write (the engine owns the ledger's own).

    ``dropped_values`` (``<audience>__dropped``): one row per identifier value left out by
    preparation: ``row_id``, ``column_name``, ``value_masked``, ``reason``, ``detail``.
    """

    source_snapshot: str
    participants: str
    quarantine: str
    dropped_values: str


@dataclass(frozen=True, slots=True)
class AudienceSpecs:
    """Everything Dagster needs to know about one audience's assets, before any execution.

    Attributes:
        audience: The audience definition the specs were built from.
        source: The source snapshot asset.
        participants: Prepared participants (one row per person).
        quarantine: Input rows held back, each with a reason.
        flow_sync: The send to the flow.
        flow_report: Final per-participant statuses.
        checks: Asset checks of the flow report (evaluated by their own step, on the ledger).
        tables: Warehouse tables written by the assets.
        prepare_checks: Asset checks of the participants (their own step, on the tables).
    """

    audience: AudienceConfig
    source: dg.AssetSpec
    participants: dg.AssetSpec
    quarantine: dg.AssetSpec
    flow_sync: dg.AssetSpec
    flow_report: dg.AssetSpec
    checks: tuple[dg.AssetCheckSpec, ...]
    tables: AudienceTables
    prepare_checks: tuple[dg.AssetCheckSpec, ...] = ()

    @property
    def assets(self) -> tuple[dg.AssetSpec, ...]:
        """All five asset specs, upstream first."""
        return (self.source, self.participants, self.quarantine, self.flow_sync, self.flow_report)

    def op_name(self, step: str) -> str:
        """Name of the op that materializes ``step`` (unique across audiences)."""
        return f"{self.audience.name}__{step}"


def audience_asset_key(audience_name: str, step: str) -> dg.AssetKey:
    """The key of one step's asset, e.g. ``AssetKey(["vip", "flow_report"])``."""
    return dg.AssetKey([audience_name, step])


def audience_tables(audience_name: str) -> AudienceTables:
    """Names of the tables the audience's assets write, prefixed by the audience name."""
    return AudienceTables(
        source_snapshot=f"{audience_name}__source_snapshot",
        participants=f"{audience_name}__participants",
        quarantine=f"{audience_name}__quarantine",
        dropped_values=f"{audience_name}__dropped",
    )


def _source_description(audience: AudienceConfig) -> str:
    source = audience.source
    what = f"table `{source.table}`" if source.table else f"query:\n\n```sql\n{source.query}\n```"
    return f"Snapshot of the audience's source rows, read from {what}"


def _code_references(file: Path | None, line: int | None) -> dict[str, object]:
    # The UI's link from each asset to the YAML that defines it (Dagster's code references).
    if file is None:
        return {}
    with warnings.catch_warnings():  # beta in 1.13: the warning would repeat on every load
        warnings.simplefilter("ignore", dg.BetaWarning)
        reference = dg.LocalFileCodeReference(
            file_path=str(file.absolute()), line_number=line, label=f"audience {file.name}"
        )
        references = dg.CodeReferencesMetadataValue(code_references=[reference])
        return dict(CodeReferencesMetadataSet(code_references=references))


def _with_description(audience: AudienceConfig, step: str) -> str:
    # The YAML's description says what the audience is for; the step's what the asset holds.
    return f"{audience.description}\n\n{step}" if audience.description else step


def build_audience_specs(
    audience: AudienceConfig,
    *,
    source_file: Path | None = None,
    source_line: int | None = None,
    warehouse_kinds: Mapping[str, str] | None = None,
) -> AudienceSpecs:
    """Translate one audience into asset and check specs.

    Args:
        audience: A validated audience definition.
        source_file: The YAML file defining it: every asset gets a code reference to it.
        source_line: The line of its ``name:`` in that file.
        warehouse_kinds: Connection name -> ``duckdb`` / ``postgres`` (``_catalog``), shown as
            the kind of the assets stored in (or read from) that warehouse.

    Returns:
        The specs; calling this twice gives equal results and touches nothing.
    """
    name = audience.name
    tables = audience_tables(name)
    campaign = audience.flow.campaign_id
    tags = {**audience.tags, "moments/audience": name}
    kinds = dict(warehouse_kinds or {})
    stored_in = {kinds[LEDGER_CONNECTION]} if LEDGER_CONNECTION in kinds else set()
    connection = audience.source.connection
    read_from = {kinds[connection]} if connection in kinds else set()
    # Every asset: the audience's group, tags, owners and a link to its YAML file.
    owners = list(audience.owners)
    origin = _code_references(source_file, source_line)
    key = {step: audience_asset_key(name, step) for step in (SOURCE, PARTICIPANTS, QUARANTINE)}
    key |= {step: audience_asset_key(name, step) for step in (FLOW_SYNC, FLOW_REPORT)}
    flow_meta = {f"{METADATA_PREFIX}campaign_id": campaign}

    source = dg.AssetSpec(
        key[SOURCE],
        description=_with_description(audience, _source_description(audience)),
        kinds={"sql", *read_from, *stored_in},
        metadata={"dagster/table_name": tables.source_snapshot, **origin},
        group_name=name,
        tags=tags,
        owners=owners,
    )
    participants = dg.AssetSpec(
        key[PARTICIPANTS],
        deps=[key[SOURCE]],
        description=_with_description(
            audience, "One row per person: normalized identifiers, attributes and source rows."
        ),
        kinds={"pandas", *stored_in},
        metadata={"dagster/table_name": tables.participants, **origin},
        group_name=name,
        tags=tags,
        owners=owners,
    )
    quarantine = dg.AssetSpec(
        key[QUARANTINE],
        deps=[key[SOURCE]],
        description=_with_description(
            audience, "Input rows held back from the flow, each with a reason and detail."
        ),
        kinds={"pandas", *stored_in},
        metadata={"dagster/table_name": tables.quarantine, **origin},
        group_name=name,
        tags=tags,
        owners=owners,
    )
    flow_sync = dg.AssetSpec(
        key[FLOW_SYNC],
        deps=[key[PARTICIPANTS], key[QUARANTINE]],
        description=_with_description(
            audience,
            f"Participants sent to Moments flow {campaign} (exactly once, via the ledger).",
        ),
        kinds={"infobip"},
        metadata={**flow_meta, **origin},
        skippable=True,
        group_name=name,
        tags=tags,
        owners=owners,
    )
    flow_report = dg.AssetSpec(
        key[FLOW_REPORT],
        deps=[key[FLOW_SYNC]],
        description=_with_description(
            audience,
            f"Final status (ACCEPTED/REJECTED with reason) of every participant of flow "
            f"{campaign}, persisted in the ledger's status table.",
        ),
        kinds={"infobip", *stored_in},
        metadata={**flow_meta, **origin},
        skippable=True,
        group_name=name,
        tags=tags,
        owners=owners,
    )
    limit = audience.report.max_rejection_rate
    checks = (
        dg.AssetCheckSpec(
            CHECK_REJECTION_RATE,
            asset=key[FLOW_REPORT],
            description=f"Share of REJECTED participants is at most {limit:.1%}.",
        ),
        dg.AssetCheckSpec(
            CHECK_NOTHING_PENDING,
            asset=key[FLOW_REPORT],
            description="No participant is left PENDING or HELD (ambiguous send).",
        ),
        dg.AssetCheckSpec(
            CHECK_NO_CONFLICT_SENT,
            asset=key[FLOW_REPORT],
            description="No identifier of the sent participants belongs to two person keys.",
        ),
        dg.AssetCheckSpec(
            CHECK_NO_QUARANTINE_LEAK,
            asset=key[FLOW_REPORT],
            description="No quarantined input row is among the rows of sent participants.",
        ),
    )
    prepare_checks = (
        dg.AssetCheckSpec(
            CHECK_ROWS_ACCOUNTED,
            asset=key[PARTICIPANTS],
            description="Every source row is in exactly one participant or in quarantine, as "
            "recorded in the participants and quarantine tables. Blocking: a failure stops the "
            "sync.",
            blocking=True,
        ),
    )
    return AudienceSpecs(
        audience=audience,
        source=source,
        participants=participants,
        quarantine=quarantine,
        flow_sync=flow_sync,
        flow_report=flow_report,
        checks=checks,
        tables=tables,
        prepare_checks=prepare_checks,
    )
