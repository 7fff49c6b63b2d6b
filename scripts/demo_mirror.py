"""The demo's mirror audience: a plan with removals, the guard refusing a half-loaded source,
then the removals applied (called by ``scripts/demo.py``).

Three runs of each mirror audience of the sample project, the source changed between them as a
warehouse would change it:

1. everyone active is added (the plan: adds only);
2. a half-loaded source (half the rows missing): the blocking guard refuses, nothing is added
   or removed, no DELETE reaches the emulator;
3. the load is complete again and three people unsubscribed: the plan shows three removals
   (masked samples), the guard lets them through (below 10 %), and they leave the flow.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

STEPS = (
    "source",
    "participants",
    "quarantine",
    "membership_plan",
    "flow_sync",
    "flow_report",
    "flow_removals",
)
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
LEAVERS = ("S0001", "S0002", "S0003")


def mirror_names(audiences_dir: Path) -> list[str]:
    """The sample project's mirror audiences."""
    from moments_pipeline.config import Membership, load_audiences

    return [
        n for n, a in load_audiences(audiences_dir).items() if a.membership is Membership.MIRROR
    ]


def plan_keys(names: list[str], mirrored: list[str]) -> list[Any]:
    """The plan assets of the mirror audiences among ``names`` (their guard is a check on it)."""
    import dagster as dg

    return [dg.AssetKey([n, "membership_plan"]) for n in names if n in mirrored]


def _sql(warehouse: Path, statement: str) -> None:
    from moments_pipeline.warehouse import connect_warehouse

    wh = connect_warehouse(f"duckdb:///{warehouse}")
    try:
        wh.execute(statement)
    finally:
        wh.close()


def _meta(result: Any, name: str, step: str) -> dict[str, Any]:
    for event in result.get_asset_materialization_events():
        if event.asset_key.path == [name, step]:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    return {}


def _guard(result: Any) -> Any:
    found = [c for c in result.get_asset_check_evaluations() if c.check_name.startswith("removals")]
    return found[0] if found else None


def _deletes(base_url: str) -> int:
    log = httpx.get(f"{base_url}/_emulator/requests").json()
    return sum(1 for r in log if r["operation"] == "remove-people-from-flow")


def run_mirror(
    job: Any, instance: Any, name: str, base_url: str, warehouse: Path
) -> tuple[bool, list[str]]:
    """Run the three steps; return (ok, summary lines)."""
    import dagster as dg

    keys = [dg.AssetKey([name, s]) for s in STEPS]
    lines = [f"{name}  (membership: mirror)"]
    ok = True
    campaign: Any = None

    def run(label: str) -> Any:
        nonlocal campaign
        started = time.perf_counter()
        result = job.execute_in_process(
            instance=instance, asset_selection=keys, raise_on_error=False, run_config=QUIET
        )
        plan = _meta(result, name, "membership_plan")
        campaign = campaign or _meta(result, name, "flow_sync").get("moments/campaign_id")
        guard = _guard(result)
        in_flow = len(httpx.get(f"{base_url}/_emulator/flows/{campaign}/participants").json())
        lines.append(
            f"  {label} ({time.perf_counter() - started:.1f} s): source rows "
            f"{plan.get('moments/source_rows')}, plan: add {plan.get('moments/plan/adds')}, "
            f"remove {plan.get('moments/plan/removals')}, unchanged "
            f"{plan.get('moments/plan/unchanged')}, quarantined "
            f"{plan.get('moments/plan/quarantined')}"
        )
        verdict = "passed" if guard is not None and guard.passed else "REFUSED"
        lines.append(f"    guard {verdict}: {guard.description if guard else 'not evaluated'}")
        lines.append(f"    in the flow {in_flow} profile(s); DELETEs so far {_deletes(base_url)}")
        return result, plan, guard, in_flow

    first, plan, guard, in_flow = run("1. first run")
    ok &= bool(first.success and guard and guard.passed and plan.get("moments/plan/adds"))
    everyone = in_flow

    # A half-loaded source: the rows of the second half are not there yet.
    _sql(
        warehouse,
        "UPDATE subscribers SET status = 'loading' "
        "WHERE status = 'active' AND subscriber_id >= 'S0020'",
    )
    half, plan, guard, in_flow = run("2. half-loaded source")
    ok &= bool(not half.success and guard and not guard.passed)
    ok &= in_flow == everyone and _deletes(base_url) == 0
    _sql(warehouse, "UPDATE subscribers SET status = 'active' WHERE status = 'loading'")

    # The load is complete again, and three people unsubscribed.
    listed = ", ".join(f"'{s}'" for s in LEAVERS)
    _sql(
        warehouse,
        f"UPDATE subscribers SET status = 'unsubscribed' WHERE subscriber_id IN ({listed})",
    )
    third, plan, guard, in_flow = run("3. three unsubscribed")
    removal = _meta(third, name, "flow_removals")
    lines.append("    removal sample (masked):")
    lines += [
        "      " + row for row in str(plan.get("moments/plan/removal_sample", "")).splitlines()
    ]
    lines.append(
        f"    removed {removal.get('moments/removed')}, already gone "
        f"{removal.get('moments/already_gone')}, unconfirmed {removal.get('moments/unconfirmed')}"
    )
    ok &= bool(third.success and guard and guard.passed)
    ok &= removal.get("moments/removed") == len(LEAVERS) == plan.get("moments/plan/removals")
    ok &= in_flow == everyone - len(LEAVERS) and _deletes(base_url) == len(LEAVERS)
    if not ok:
        lines.append("  MIRROR DEMO FAILED: see the lines above")
    return bool(ok), lines
