"""Mirror membership in Dagster: the plan asset, the blocking removal guard, the removal step.

Only for audiences with ``membership: mirror``. Per audience (``<audience>/...``):

- ``membership_plan`` (op ``<audience>__plan``, after participants and quarantine): computes
  adds, removals, unchanged and quarantined from the stored tables and the ledger, records the
  plan through the ``LedgerStore`` (tables ``moments_sync_membership_plans`` and
  ``moments_sync_plan_people``, one plan per run and partition, kept; removals PLANNED) and
  shows counts and masked samples. It calls nothing. ``flow_sync`` of a mirror audience waits
  for it, so the plan is made before anything changes.
- ``removals_within_guard`` (op ``<audience>__removal_guard``), a BLOCKING check on the plan,
  evaluated on the recorded plan: refuses an empty source and removals beyond
  ``removals.max_removal_share`` / ``removals.max_removals``. A refusal is a failed check with
  the numbers, and the steps downstream (the adds and the removals) do not run. An operator
  overrides it for one run with the check's run config ``allow_mass_removal: true``; the
  override is in the check's metadata and, once applied, in the run's tag
  ``moments/allow_mass_removal`` and the removal step's metadata. It changes nothing.
- ``flow_removals`` (op ``<audience>__remove``, after the plan): re-reads the recorded plan,
  re-evaluates the guard (a removal never runs on a refused plan, whatever ran before), and
  issues the DELETEs (``sync.apply_removals``) through the account's client and rate budget.
  Run config ``dry_run: true`` stops after the plan.
"""

import asyncio
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster import AssetCheckExecutionContext, AssetExecutionContext
from pydantic import Field

from moments_pipeline.config import Membership
from moments_pipeline.dagster import _metadata as md
from moments_pipeline.dagster import _partitions
from moments_pipeline.dagster._catalog import is_dry_run
from moments_pipeline.dagster._resources import MomentsResource, WarehouseResource
from moments_pipeline.dagster._specs import AudienceSpecs, audience_asset_key
from moments_pipeline.dagster._tables import PARTICIPANTS_JSON_COLUMNS, QUARANTINE_JSON_COLUMNS
from moments_pipeline.sync import (
    REMOVAL_OPEN,
    MomentsRemover,
    PlanAction,
    PlanSummary,
    RemovalResult,
    RemovalsStoppedError,
    RemovalState,
    SqlLedgerStore,
    apply_removals,
    evaluate_guard,
    plan_membership,
)

PLAN = "membership_plan"
REMOVALS = "flow_removals"
CHECK_REMOVAL_GUARD = "removals_within_guard"
OVERRIDE_TAG = "moments/allow_mass_removal"
_SAMPLE = 10


class RemovalRunConfig(dg.Config):
    """Run config of a ``<audience>__remove`` op.

    Attributes:
        dry_run: Stop after the plan: issue no DELETE, write nothing.
    """

    dry_run: bool = Field(default=False, description="Stop after the plan: no DELETE")


def is_mirror(specs: AudienceSpecs) -> bool:
    return specs.audience.membership is Membership.MIRROR


def _keys(specs: AudienceSpecs) -> tuple[dg.AssetKey, dg.AssetKey]:
    name = specs.audience.name
    return audience_asset_key(name, PLAN), audience_asset_key(name, REMOVALS)


def with_plan_first(specs: AudienceSpecs) -> AudienceSpecs:
    """A mirror audience's specs with ``flow_sync`` after the plan (and so after the guard)."""
    if not is_mirror(specs):
        return specs
    plan_key, _ = _keys(specs)
    deps = [*specs.flow_sync.deps, dg.AssetDep(plan_key)]
    return dataclasses.replace(specs, flow_sync=specs.flow_sync.replace_attributes(deps=deps))


def plan_keys(specs: AudienceSpecs) -> list[dg.AssetKey]:
    """The plan asset of a mirror audience (it calls nothing: dry runs may include it)."""
    return [_keys(specs)[0]] if is_mirror(specs) else []


def guard_op_name(specs: AudienceSpecs) -> str:
    return specs.op_name("removal_guard")


def build_membership_assets(specs: AudienceSpecs) -> list[Any]:
    """The plan and removal assets and the guard check of a mirror audience (else none)."""
    if not is_mirror(specs):
        return []
    plan_key, removals_key = _keys(specs)
    audience = specs.audience
    tags = {"moments/audience": audience.name}
    partitioning: dict[str, Any] = {
        "partitions_def": _partitions.partitions_def(audience),
        "backfill_policy": _partitions.backfill_policy(audience),
    }
    plan_spec = dg.AssetSpec(
        plan_key,
        deps=[specs.participants.key, specs.quarantine.key],
        description="Adds, removals, unchanged and quarantined people of this run (mirror "
        "membership), recorded in the ledger's plan tables before anything changes.",
        kinds={"pandas"},
        group_name=audience.name,
        tags=tags,
    )
    removals_spec = dg.AssetSpec(
        removals_key,
        deps=[plan_key],
        description=f"People this audience added who left it, removed from Moments flow "
        f"{audience.flow.campaign_id} (one DELETE each, recorded before and after).",
        kinds={"infobip"},
        skippable=True,
        group_name=audience.name,
        tags=tags,
    )
    limits = audience.removals
    guard_spec = dg.AssetCheckSpec(
        CHECK_REMOVAL_GUARD,
        asset=plan_key,
        description=f"Refuses an empty source and removals above "
        f"{limits.max_removal_share:.0%} of the audience in the flow"
        + (f" or above {limits.max_removals}" if limits.max_removals is not None else "")
        + ". Blocking: nothing is added or removed after a refusal. Override for one run with "
        "run config allow_mass_removal: true.",
        blocking=True,
    )

    @dg.multi_asset(name=specs.op_name("plan"), specs=[plan_spec], **partitioning)
    def _plan(context: AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[Any]:
        yield plan_step(specs, context, warehouse, plan_key)

    @dg.multi_asset_check(
        specs=[guard_spec],
        name=guard_op_name(specs),
        config_schema={"allow_mass_removal": dg.Field(bool, default_value=False)},
    )
    def _guard(
        context: AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> Iterator[dg.AssetCheckResult]:
        allow = bool(context.op_execution_context.op_config["allow_mass_removal"])
        yield guard_result(specs, context, warehouse, guard_spec, allow)

    @dg.multi_asset(
        name=specs.op_name("remove"), specs=[removals_spec], can_subset=True, **partitioning
    )
    def _remove(
        context: AssetExecutionContext,
        config: RemovalRunConfig,
        warehouse: WarehouseResource,
        moments: MomentsResource,
    ) -> Iterator[Any]:
        yield from remove_step(specs, context, config, warehouse, moments, removals_key)

    return [_plan, _guard, _remove]


# -- steps ---------------------------------------------------------------------------------------


def plan_step(
    specs: AudienceSpecs,
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    plan_key: dg.AssetKey,
) -> dg.MaterializeResult:
    """Compute and record the plan of each partition of the run (reads and records only)."""
    audience, tables = specs.audience, specs.tables
    per_partition: dict[str, dict[str, Any]] = {}
    with warehouse.open() as wh:
        ledger = SqlLedgerStore(wh)
        ledger.ensure_schema()
        for partition in _partitions.run_partitions(context, audience):
            snapshot = _partitions.read_partition(
                wh, tables.source_snapshot, partition, json_columns=()
            )
            participants = _partitions.read_partition(
                wh,
                tables.participants,
                partition,
                json_columns=PARTICIPANTS_JSON_COLUMNS,
                columns=["person_key"],
            )
            quarantine = _partitions.read_partition(
                wh, tables.quarantine, partition, json_columns=QUARANTINE_JSON_COLUMNS
            )
            plan = plan_membership(
                ledger,
                plan_id=context.run.run_id,
                audience=audience.name,
                partition_key=partition,
                campaign_id=audience.flow.campaign_id,
                person_keys=participants["person_key"].astype(str).tolist(),
                source_rows=len(snapshot),
                quarantined=len(quarantine),
            )
            ledger.record_plan(plan.summary, plan.people, plan.removals)
            per_partition[partition] = plan_metadata(ledger, plan.summary)
    if len(per_partition) == 1:
        metadata = next(iter(per_partition.values()))
    else:
        metadata = {md.key("partitions"): dg.MetadataValue.json(sorted(per_partition))}
        for partition, values in per_partition.items():
            metadata |= {f"{k}/{partition}": v for k, v in values.items()}
    return dg.MaterializeResult(asset_key=plan_key, metadata=metadata)


def plan_metadata(ledger: SqlLedgerStore, plan: PlanSummary) -> dict[str, Any]:
    """Counts and masked samples of a recorded plan (from what the ledger now holds)."""
    people = ledger.plan_people(plan.plan_id, plan.partition_key)
    samples: dict[str, list[dict[str, Any]]] = {a.value: [] for a in PlanAction}
    for p in people:
        bucket = samples[p.action.value]
        if len(bucket) < _SAMPLE:
            bucket.append(
                {
                    "person": p.person_masked,
                    "kind": p.kind,
                    "identifier": p.identifier_masked,
                    "reason": p.reason,
                }
            )
    columns = ["person", "kind", "identifier", "reason"]
    tables = ledger.table_names()
    return {
        md.key("plan_id"): plan.plan_id,
        md.key("partition_key"): plan.partition_key,
        md.key("source_rows"): plan.source_rows,
        md.key("participants"): plan.participants,
        md.key("in_flow"): plan.in_flow,
        md.key("plan/adds"): plan.adds,
        md.key("plan/removals"): plan.removals,
        md.key("plan/unchanged"): plan.unchanged,
        md.key("plan/quarantined"): plan.quarantined,
        md.key("plan/not_removable"): plan.not_removable,
        md.key("plan/removal_sample"): md.markdown_table(samples[PlanAction.REMOVE], columns),
        md.key("plan/add_sample"): md.markdown_table(samples[PlanAction.ADD], columns),
        md.key("plan/not_removable_sample"): md.markdown_table(
            samples[PlanAction.NOT_REMOVABLE], columns
        ),
        md.key("plan_tables"): dg.MetadataValue.json(
            [tables["membership_plans"], tables["plan_people"]]
        ),
    }


def _guard_numbers(specs: AudienceSpecs, plan: PlanSummary) -> dict[str, Any]:
    limits = specs.audience.removals
    return {
        "plan_id": plan.plan_id,
        "partition_key": plan.partition_key,
        "source_rows": plan.source_rows,
        "in_flow": plan.in_flow,
        "removals": plan.removals,
        "max_removal_share": limits.max_removal_share,
        "max_removals": limits.max_removals if limits.max_removals is not None else "none",
    }


def guard_result(
    specs: AudienceSpecs,
    context: AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    spec: dg.AssetCheckSpec,
    allow_mass_removal: bool,
) -> dg.AssetCheckResult:
    """Evaluate the guard on every recorded plan of the run's partitions (reads only)."""
    audience = specs.audience
    with warehouse.open() as wh:
        ledger = SqlLedgerStore(wh)
        stored = []
        if audience.partition is not None:  # executed alone: every partition the tables hold
            stored = _partitions.stored_partitions(wh, specs.tables.participants)
        partitions = _partitions.partition_scopes(context, audience, stored)
        plans = {}
        if wh.table_exists(ledger.table_names()["membership_plans"]):
            plans = {p: ledger.latest_plan(audience.name, p) for p in partitions}
    missing = sorted(p for p in partitions if plans.get(p) is None)
    if missing or not partitions:
        return dg.AssetCheckResult(
            asset_key=spec.asset_key,
            check_name=spec.name,
            passed=False,
            description="nothing recorded yet: materialize the membership plan first",
        )
    refusals: list[str] = []
    numbers: list[dict[str, Any]] = []
    share = 0.0
    overridden = False
    for partition, plan in sorted(plans.items()):
        assert plan is not None
        verdict = evaluate_guard(plan, audience.removals, allow_mass_removal=allow_mass_removal)
        where = f"partition {partition}: " if partition else ""
        refusals += [where + r for r in verdict.refusals]
        overridden = overridden or verdict.overridden
        share = max(share, verdict.share)
        numbers.append({**_guard_numbers(specs, plan), "share": verdict.share})
    passed = not refusals or allow_mass_removal
    metadata: dict[str, Any] = {
        **{k: v for k, v in numbers[0].items()},
        "share": share,
        "refusals": dg.MetadataValue.json(refusals),
        "allow_mass_removal": allow_mass_removal,
        "overridden": overridden,
    }
    if len(numbers) > 1:
        metadata["per_partition"] = dg.MetadataValue.json(numbers)
    if refusals and not passed:
        description = "removals refused, nothing is removed: " + "; ".join(refusals)
        description += " (override for one run: run config allow_mass_removal: true)"
    elif overridden:
        description = "refusals overridden by the operator for this run: " + "; ".join(refusals)
    else:
        description = "removals within the guard"
    return dg.AssetCheckResult(
        asset_key=spec.asset_key,
        check_name=spec.name,
        passed=passed,
        metadata=metadata,
        description=description,
    )


def override_in_run_config(run_config: Mapping[str, Any], op_name: str) -> bool:
    """``allow_mass_removal`` as the run's config gives it to the guard op (False if absent)."""
    ops = run_config.get("ops") or {}
    config = (ops.get(op_name) or {}).get("config") or {}
    return bool(config.get("allow_mass_removal", False))


def _plan_of_this_run(context: AssetExecutionContext, plan: PlanSummary | None) -> bool:
    run = context.run
    return plan is not None and plan.plan_id in {run.run_id, run.root_run_id, run.parent_run_id}


def remove_step(
    specs: AudienceSpecs,
    context: AssetExecutionContext,
    config: RemovalRunConfig,
    warehouse: WarehouseResource,
    moments: MomentsResource,
    removals_key: dg.AssetKey,
) -> Iterator[dg.MaterializeResult | dg.AssetObservation]:
    """Apply the run's recorded plan: the DELETE of every open removal, or nothing (dry run)."""
    audience = specs.audience
    allow = override_in_run_config(context.run.run_config, guard_op_name(specs))
    # A run tagged as a dry run previews, whatever the step's config says.
    dry_run = config.dry_run or is_dry_run(context)
    total = RemovalResult()
    with warehouse.open() as wh:
        ledger = SqlLedgerStore(wh)
        ledger.ensure_schema()
        for partition in _partitions.run_partitions(context, audience):
            plan = ledger.latest_plan(audience.name, partition)
            if plan is None or not _plan_of_this_run(context, plan):
                raise dg.Failure(
                    description=f"audience {audience.name!r}: no membership plan recorded by "
                    f"this run for partition {partition!r}; materialize "
                    f"{specs.op_name('plan')} in the same run (removals apply only the plan "
                    "the guard read)"
                )
            verdict = evaluate_guard(plan, audience.removals, allow_mass_removal=allow)
            if not verdict.passed:
                raise dg.Failure(
                    description=f"audience {audience.name!r}: removals refused by the guard, "
                    "nothing removed: " + "; ".join(verdict.refusals),
                    metadata={md.key(k): v for k, v in _guard_numbers(specs, plan).items()},
                )
            if dry_run:
                yield dg.AssetObservation(
                    asset_key=removals_key,
                    metadata={
                        md.key("dry_run"): True,
                        md.key("plan_id"): plan.plan_id,
                        md.key("would_remove"): plan.removals,
                    },
                )
                continue
            if verdict.overridden:
                context.instance.add_run_tags(context.run.run_id, {OVERRIDE_TAG: "true"})
            todo = [
                r
                for r in ledger.removals(
                    audience.name, partition, audience.flow.campaign_id, sorted(REMOVAL_OPEN)
                )
                if r.plan_id == plan.plan_id or r.state is RemovalState.REMOVING
            ]
            try:
                result = asyncio.run(_apply(moments, ledger, todo))
            except RemovalsStoppedError as exc:
                raise dg.Failure(
                    description=f"audience {audience.name!r}: {exc}",
                    metadata={md.key("stopped_reason"): exc.reason},
                ) from None
            _add(total, result)
    if dry_run:
        return
    metadata: dict[str, Any] = {
        md.key("removals_planned"): total.planned,
        md.key("removed"): total.removed,
        md.key("already_gone"): total.gone,
        md.key("refused"): total.refused,
        md.key("unconfirmed"): total.unconfirmed,
        md.key("skipped"): total.skipped,
        md.key("removal_reasons"): md.counts(total.reasons),
        md.key("removal_elapsed_s"): round(total.elapsed_s, 3),
        md.key("allow_mass_removal"): allow,
    }
    if total.refused or total.unconfirmed:
        raise dg.Failure(
            description=f"audience {audience.name!r}: {total.refused} removal(s) refused by "
            f"Infobip and {total.unconfirmed} unconfirmed (retries spent); the people may "
            "still be in the flow. Unconfirmed DELETEs are repeated by the next run (a "
            "repeated DELETE is safe); refused ones are planned again.",
            metadata=metadata,
        )
    yield dg.MaterializeResult(asset_key=removals_key, metadata=metadata)


def _add(total: RemovalResult, part: RemovalResult) -> None:
    for name in ("planned", "removed", "gone", "refused", "unconfirmed", "skipped"):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    for reason, n in part.reasons.items():
        total.reasons[reason] = total.reasons.get(reason, 0) + n
    total.elapsed_s += part.elapsed_s


async def _apply(
    moments: MomentsResource, ledger: SqlLedgerStore, todo: list[Any]
) -> RemovalResult:
    async with moments.get_client() as client:
        return await apply_removals(
            MomentsRemover(client), ledger, todo, concurrency=moments.max_in_flight
        )
