"""``make demo``: every sample audience through Dagster into a local Moments emulator.

Steps: build the sample DuckDB warehouse from ``data_samples/`` (fresh each time), start the
emulator (``moments-pipeline emulator`` on a free loopback port, Infobip's real 10 requests/s),
materialize each audience's assets and checks in process on the project's Dagster instance
(``.dagster_home/``, so ``make dev`` shows these runs; the emulator journals its state in
``.demo/emulator.journal``, which ``make dev`` serves again), print
a summary per audience, execute every asset check once more on its own (as the UI's "Execute"
does: the checks read the ledger and tables, so nothing may be sent), stop the emulator, and say
how to open the same project with ``make dev``. Exits non-zero when a run or a check failed,
something was left held or pending, a check executed alone sent a request or materialized an
asset, or the emulator recorded a single profile merge.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import dagster_home  # noqa: E402
import demo_mirror  # noqa: E402  (the mirror audience: a plan with removals, applied)
import demo_partitions  # noqa: E402  (the daily-partitioned audience: sensor + one backfill run)
from build_sample_warehouse import build_duckdb  # noqa: E402
from emulator_process import served_emulator  # noqa: E402

WAREHOUSE = REPO / ".demo" / "warehouse.duckdb"
JOURNAL = REPO / ".demo" / "emulator.journal"
EMULATOR_CONFIG = REPO / "data_samples" / "emulator.yaml"
AUDIENCES = REPO / "audiences"
# Fixed order: later audiences meet the identities the earlier ones sent (the identity ledger).
ORDER = ("loyalty_customers", "cart_abandoners", "newsletter_welcome")
STEPS = ("source", "participants", "quarantine", "flow_sync", "flow_report")
# The summary below says what happened; Dagster's step-by-step DEBUG events stay in the
# instance's event log instead of flooding the terminal.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _metadata(result: Any, step: str) -> dict[str, Any]:
    for event in result.get_asset_materialization_events():
        if event.asset_key.path[-1] == step:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    return {}


def _fmt(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


def run_audience(job: Any, instance: Any, name: str, base_url: str) -> tuple[bool, list[str]]:
    """Materialize one audience; return (ok, summary lines)."""
    import dagster as dg

    merges_before = len(httpx.get(f"{base_url}/_emulator/merges").json())
    keys = [dg.AssetKey([name, s]) for s in STEPS]
    started = time.perf_counter()
    result = job.execute_in_process(
        instance=instance, asset_selection=keys, raise_on_error=False, run_config=QUIET
    )
    elapsed = time.perf_counter() - started
    merges = len(httpx.get(f"{base_url}/_emulator/merges").json()) - merges_before
    source, prepared = _metadata(result, "source"), _metadata(result, "participants")
    quarantine, sync = _metadata(result, "quarantine"), _metadata(result, "flow_sync")
    report = _metadata(result, "flow_report")
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    failed_checks = sorted(n for n, ok in checks.items() if not ok)
    campaign = sync.get("moments/campaign_id")
    in_flow = len(httpx.get(f"{base_url}/_emulator/flows/{campaign}/participants").json())
    sent = sync.get("moments/participants_in", 0) - sync.get("moments/already_delivered", 0)
    held = report.get("moments/held", 0) + report.get("moments/pending", 0)
    participants = int(prepared.get("moments/participants", 0))
    rows_kept = int(source.get("moments/rows", 0)) - int(quarantine.get("moments/quarantined", 0))
    # Identifiers refused in normalization, by reason (each is in the dropped-values table).
    dropped = {
        k.rsplit("/", 1)[-1]: v
        for k, v in prepared.items()
        if k.startswith("moments/dropped/") and v
    }
    lines = [
        f"{name}  (flow {campaign}, {elapsed:.1f} s)",
        f"  rows read        {source.get('moments/rows', '?')}",
        f"  participants     {participants}  (from {rows_kept} rows: "
        f"{rows_kept - participants} duplicate rows of the same people folded in)",
        f"  quarantined      {quarantine.get('moments/quarantined', '?')}  "
        f"({_fmt(quarantine.get('moments/quarantined_by_reason', {}))})",
        f"  dropped values   {prepared.get('moments/dropped', 0)}  ({_fmt(dropped)})",
        f"  refused at send  {sync.get('moments/refused_at_sync', 0)}  "
        f"({_fmt(sync.get('moments/refused_at_sync_by_reason', {}))})",
        f"  sent             {sent} in {sync.get('moments/sent_requests', '?')} request(s)",
        f"  accepted         {report.get('moments/accepted', '?')}",
        f"  already in flow  {report.get('moments/already_in_flow', '?')}",
        f"  rejected         {report.get('moments/rejected', '?')}  "
        f"({_fmt(report.get('moments/rejected_by_reason', {}))})",
        f"  reports          {sync.get('moments/reports_by_callback', 0)} by notifyUrl callback, "
        f"{sync.get('moments/reports_by_polling', 0)} polled",
        f"  held or pending  {held}",
        f"  in the flow      {in_flow} profile(s) (emulator)",
        f"  merges caused    {merges}",
        f"  checks           {len(checks) - len(failed_checks)}/{len(checks)} passed"
        + (f"  FAILED: {', '.join(failed_checks)}" if failed_checks else ""),
    ]
    # The sync step's progress lines (sent/total, req/s, ETA; at most one per 5 s) are INFO
    # events of the run's log: shown here, since the console only prints warnings.
    lines += [
        f"  progress         {e.user_message}"
        for e in instance.all_logs(result.run_id)
        if e.user_message.startswith(f"{name}: sent ")
    ]
    # Every check the audience declares must have been evaluated, not just the ones that ran.
    expected_checks = len(job.asset_layer.asset_graph.get_check_keys_for_assets(set(keys)))
    ok = (
        result.success
        and not failed_checks
        and merges == 0
        and held == 0
        and len(checks) == expected_checks
    )
    if not result.success:
        lines.append("  RUN FAILED: see the step errors above")
    return ok, lines


def run_forms(defs: Any, instance: Any, base_url: str) -> tuple[bool, list[str]]:
    """Materialize the form catalog and every form source with their checks; a summary."""
    import dagster as dg

    keys = [k for k in defs.resolve_asset_graph().get_all_asset_keys() if k.path[0] == "forms"]
    if not keys:
        return True, []
    result = dg.materialize(
        list(defs.assets),
        resources=defs.resources,
        instance=instance,
        selection=dg.AssetSelection.assets(*keys) | dg.AssetSelection.checks_for_assets(*keys),
        raise_on_error=False,
        run_config=QUIET,
    )
    checks = result.get_asset_check_evaluations()
    passed = sum(c.passed for c in checks)
    lines = []
    held = 0
    for event in result.get_asset_materialization_events():
        meta = {k: v.value for k, v in event.materialization.metadata.items()}
        name = "/".join(event.asset_key.path)
        if "moments/forms" in meta:
            changes = {
                what: len(meta[f"moments/forms_{what}"]) for what in ("added", "changed", "removed")
            }
            lines.append(
                f"{name}: {meta['moments/forms']} form(s), {meta['moments/form_fields']} field(s); "
                + _fmt(changes)
            )
            continue
        held += int(meta.get("moments/held", 0))
        lines.append(
            f"{name}: rows {meta['moments/rows_in']}, submitted {meta['moments/submitted']}, "
            f"rejected {meta['moments/rejected']}, quarantined {meta['moments/quarantined']} "
            f"({_fmt(meta['moments/quarantined_by_reason'])}), skipped "
            f"{meta['moments/skipped']}, held {meta['moments/held']}"
        )
    form = "f23f0f7c-9898-4feb-8f21-5afe2c29db7e"
    stored = httpx.get(f"{base_url}/_emulator/forms/{form}/submissions").json()
    views = httpx.get(f"{base_url}/_emulator/forms/{form}/views").json()["views"]
    lines.append(f"emulator: {len(stored)} submission(s), views {views}")
    lines.append(f"form checks: {passed}/{len(checks)} passed")
    ok = result.success and bool(checks) and passed == len(checks) and held == 0
    if not result.success:
        lines.append("FORMS RUN FAILED: see the step errors above")
    return ok, lines


def rerun_checks(defs: Any, instance: Any, names: list[str], base_url: str) -> tuple[bool, str]:
    """Execute every asset check alone, as the UI's "Execute" does: evaluated, nothing sent."""
    import dagster as dg

    before = len(httpx.get(f"{base_url}/_emulator/requests").json())
    keys = [dg.AssetKey([n, s]) for n in names for s in STEPS]
    keys += demo_mirror.plan_keys(names, demo_mirror.mirror_names(AUDIENCES))  # the guard
    result = dg.materialize(
        list(defs.assets),
        resources=defs.resources,
        instance=instance,
        selection=dg.AssetSelection.checks_for_assets(*keys),
        raise_on_error=False,
        run_config=QUIET,
    )
    checks = result.get_asset_check_evaluations()
    passed = sum(c.passed for c in checks)
    requests = len(httpx.get(f"{base_url}/_emulator/requests").json()) - before
    materialized = len(result.get_asset_materialization_events())
    ok = result.success and checks and passed == len(checks) and requests == materialized == 0
    line = (
        f"checks alone: {passed}/{len(checks)} passed, {requests} request(s) to Moments, "
        f"{materialized} materialization(s)"
    )
    return bool(ok), line


def main() -> int:
    """Run the demo; return the process exit code."""
    started = time.perf_counter()
    if WAREHOUSE.exists():
        WAREHOUSE.unlink()  # a fresh ledger each time: the emulator also starts empty
    # The emulator journals its state here, and `make dev` serves the same journal: a UI run
    # after the demo meets an emulator that knows everyone this ledger remembers.
    JOURNAL.unlink(missing_ok=True)
    counts = build_duckdb(WAREHOUSE)
    print(f"sample warehouse: {WAREHOUSE} ({_fmt(counts)} rows)")
    api_key = secrets.token_urlsafe(16)
    all_ok = True
    serve = served_emulator(
        api_key, "--config", str(EMULATOR_CONFIG), "--rate-limit", "10", "--state", str(JOURNAL)
    )
    # The project's instance (.dagster_home/): the demo's runs stay in `make dev`'s history.
    home = str(dagster_home.prepare())
    with serve as base_url:
        print(f"emulator: {base_url} (10 requests/s)\n")
        os.environ.update(
            {
                "DAGSTER_HOME": home,
                "INFOBIP_BASE_URL": base_url,
                "INFOBIP_API_KEY": api_key,
                "MOMENTS_WAREHOUSE_URL": f"duckdb:///{WAREHOUSE}",
                "MOMENTS_AUDIENCES_DIR": str(AUDIENCES),
                # Reports come back to a loopback notifyUrl receiver, as they would in production.
                "MOMENTS_CALLBACK_HOST": "127.0.0.1",
            }
        )
        import dagster as dg

        from moments_pipeline.config import load_audiences
        from moments_pipeline.dagster.definitions import definitions_from_env

        defs = definitions_from_env()
        job = defs.resolve_job_def("sync_all_audiences")
        names = list(load_audiences(AUDIENCES))
        ordered = [n for n in ORDER if n in names] + [n for n in names if n not in ORDER]
        with dg.DagsterInstance.get() as instance:
            mirrored = demo_mirror.mirror_names(AUDIENCES)
            partitioned = demo_partitions.partitioned_names(AUDIENCES)
            for name in ordered:
                if name in partitioned:
                    ok, lines = demo_partitions.run_partitioned(
                        defs, job, instance, name, base_url, QUIET
                    )
                    all_ok &= ok
                    print("\n".join(lines) + "\n")
                    continue
                if name in mirrored:
                    ok, lines = demo_mirror.run_mirror(job, instance, name, base_url, WAREHOUSE)
                    all_ok &= ok
                    print("\n".join(lines) + "\n")
                    continue
                ok, lines = run_audience(job, instance, name, base_url)
                all_ok &= ok
                print("\n".join(lines) + "\n")
            ok, lines = run_forms(defs, instance, base_url)
            all_ok &= ok
            print("\n".join(lines) + "\n")
            ok, line = rerun_checks(defs, instance, ordered, base_url)
            all_ok &= ok
            print(line)
        total_merges = len(httpx.get(f"{base_url}/_emulator/merges").json())
    print(f"total merges in the emulator: {total_merges}")
    print(
        f"demo {'OK' if all_ok and total_merges == 0 else 'FAILED'} "
        f"in {time.perf_counter() - started:.1f} s\n"
    )
    print(
        "Open the same project in Dagster's UI (these runs are in its history):\n"
        "  make dev    # dg dev + the demo's emulator on 127.0.0.1:8089 with its journal\n"
        f"(DAGSTER_HOME={home}; the emulator remembers who the demo sent, as the ledger does,\n"
        " so a UI re-run sends nothing new; `make demo` again starts both afresh.)"
    )
    return 0 if all_ok and total_merges == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
