"""``moments-pipeline validate``: check the audience files, and each against its warehouse.

Every problem is reported at once, one line each (``file: line N: field: message``), then a
summary; the exit code is 1 on any problem and 0 when all is good. Nothing is sent and nothing
is written: a DuckDB file is opened ``read_only``, a PostgreSQL session is read-only
(``default_transaction_read_only``), and of a source only its columns are asked.

With ``--infobip`` the API key (``INFOBIP_BASE_URL`` / ``INFOBIP_API_KEY``; the key is never
printed) is checked with the sync's own cheap authenticated read, ``check_api_key`` (one GET of
a report that cannot exist: 404 with a good key, 401/403 with a bad one; nothing changes). The
Moments API has no read for a flow, so a flow's existence is not checked (the output says so):
a missing or inactive flow fails the sync at its first add (404 40401), before anyone is sent.

Constraints: no Dagster import (only ``moments_pipeline/dagster`` may import it). The defaults
(``MOMENTS_AUDIENCES_DIR``, ``MOMENTS_WAREHOUSE_URL``, ``MOMENTS_SOURCE_<NAME>_URL``, the demo
DuckDB file) come from ``moments_pipeline.config``, as the Dagster definitions' do; the column
check itself is ``moments_pipeline.sync.source_problems``, the same one the Dagster source asset
runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from pydantic import ValidationError as ConfigError

from moments_pipeline.config import (
    DEFAULT_AUDIENCES_DIR,
    DEFAULT_WAREHOUSE_URL,
    DEMO_WAREHOUSE,
    LEDGER_CONNECTION,
    AudienceConfig,
    field_lines,
    read_audiences,
    source_url_env_var,
)
from moments_pipeline.infobip import KeyCheck, MomentsClient, MomentsClientConfig, check_api_key
from moments_pipeline.sync import source_problems
from moments_pipeline.warehouse import WarehouseError, connect_warehouse, redact_url


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``validate`` options."""
    parser.add_argument(
        "--audiences",
        metavar="DIR",
        help="audience file or directory (default: $MOMENTS_AUDIENCES_DIR, else audiences/)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--warehouse",
        metavar="URL",
        help="warehouse to check the sources against (default: $MOMENTS_WAREHOUSE_URL, "
        "else .demo/warehouse.duckdb when present)",
    )
    where.add_argument("--no-warehouse", action="store_true", help="check the audience files only")
    parser.add_argument(
        "--infobip",
        action="store_true",
        help="also check the API key ($INFOBIP_BASE_URL, $INFOBIP_API_KEY) with one read that "
        "changes nothing (flows cannot be checked: the API has no read for a flow)",
    )


def run(args: argparse.Namespace) -> int:
    """Check, print one line per problem and a summary; 1 on any problem, else 0."""
    location = args.audiences or os.environ.get("MOMENTS_AUDIENCES_DIR") or DEFAULT_AUDIENCES_DIR
    found = read_audiences(location)
    # (file or None for the warehouse itself, line); invalid files are not checked further.
    located: list[tuple[Path | None, str]] = [
        (error.path, line) for error in found.errors for line in error.lines
    ]
    if not found.audiences and not found.errors:
        located.append((Path(location), f"{location}: no audience files (*.yaml, *.yml) found"))

    url, warehouse_note = _warehouse_url(args)
    if url is not None and found.audiences:
        warehouse_problems, warehouse_note = _check_warehouse(url, found.audiences, found.files)
        located.extend(warehouse_problems)

    infobip_note = ""
    if getattr(args, "infobip", False):
        infobip_problems, infobip_note = _check_infobip(found.audiences, found.files)
        located.extend(infobip_problems)

    # File by file, as the files are read; a warehouse that cannot be opened comes first.
    located.sort(key=lambda item: (item[0] is not None, str(item[0] or "")))
    problems = [line for _, line in located]
    bad_files = {file for file, _ in located if file is not None}
    for line in problems:
        print(line)
    total = len(found.audiences) + len(found.errors)
    if problems:
        print(
            f"{len(problems)} problem(s) in {len(bad_files)} of {total} audience file(s); "
            f"warehouse {warehouse_note}{infobip_note}"
        )
        return 1
    print(f"{total} audience file(s) OK; warehouse {warehouse_note}{infobip_note}")
    return 0


def _warehouse_url(args: argparse.Namespace) -> tuple[str | None, str]:
    if args.no_warehouse:
        return None, "not checked (--no-warehouse)"
    url = args.warehouse or os.environ.get("MOMENTS_WAREHOUSE_URL")
    if url:
        return url, ""
    if DEMO_WAREHOUSE.is_file():
        return DEFAULT_WAREHOUSE_URL, ""
    return None, "not checked (no --warehouse, no MOMENTS_WAREHOUSE_URL, no demo warehouse)"


def _check_warehouse(
    url: str, audiences: dict[str, AudienceConfig], files: dict[str, Path]
) -> tuple[list[tuple[Path | None, str]], str]:
    """``(file or None, line)`` per problem, and how the warehouse was checked."""
    by_connection: dict[str, list[str]] = {}
    for name, audience in audiences.items():
        by_connection.setdefault(audience.source.connection, []).append(name)
    problems: list[tuple[Path | None, str]] = []
    checked = []
    for connection, names in by_connection.items():
        conn_url = url if connection == LEDGER_CONNECTION else None
        conn_url = conn_url or os.environ.get(source_url_env_var(connection))
        if conn_url is None:
            # The Dagster definitions refuse to load such an audience: so does this.
            for name in names:
                problem = (
                    f"source.connection: connection {connection!r} is not configured "
                    f"(set {source_url_env_var(connection)})"
                )
                problems.append((files[name], _located(files[name], problem)))
            continue
        try:
            warehouse = connect_warehouse(conn_url, read_only=True)
        except (WarehouseError, ValueError) as exc:
            problems.append((None, f"{connection}: cannot open {redact_url(conn_url)}: {exc}"))
            continue
        checked.append(connection if connection != LEDGER_CONNECTION else redact_url(url))
        try:
            for name in names:
                for problem in source_problems(warehouse, audiences[name]):
                    problems.append((files[name], _located(files[name], problem)))
        finally:
            warehouse.close()
    note = f"checked: {', '.join(checked)}" if checked else "not checked"
    return problems, note


def _located(file: Path, problem: str) -> str:
    """``file: line N: field: message`` for a ``field: message`` about a valid file."""
    field, sep, _ = problem.partition(": ")
    line = field_lines(file).get(field) if sep else None
    return f"{file}: line {line}: {problem}" if line is not None else f"{file}: {problem}"


_NO_FLOW_READ = (
    "flows not checked (the Moments API has no read for a flow; a missing or inactive flow "
    "fails the sync at its first add, 404 40401, before anyone is sent)"
)


def _check_infobip(
    audiences: dict[str, AudienceConfig], files: dict[str, Path]
) -> tuple[list[tuple[Path | None, str]], str]:
    """``(file or None, line)`` per problem of the key check, and the summary's note."""
    try:
        config = MomentsClientConfig.from_env()
    except (ValueError, ConfigError) as exc:
        # Field and message only: pydantic keeps the value apart (``input``), never shown.
        fields = (
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            if isinstance(exc, ConfigError)
            else str(exc)
        )
        return [(None, f"infobip: cannot check the API key: {fields}")], "; infobip not checked"
    if not audiences:
        return [], "; infobip not checked (no valid audience)"
    name = sorted(audiences)[0]
    campaign_id = audiences[name].flow.campaign_id
    check = asyncio.run(_ask(config, campaign_id))
    where = config.base_url
    if check.key_accepted is False:
        return [(None, f"infobip: {where} refused the API key ({check.reason})")], (
            "; infobip checked: key refused"
        )
    if check.key_accepted is None:
        return [(None, f"infobip: no usable answer from {where} ({check.reason})")], (
            "; infobip checked: no answer"
        )
    problems: list[tuple[Path | None, str]] = []
    if check.flow_unavailable:
        problem = (
            f"flow.campaign_id: flow {campaign_id} is missing or not active on Infobip "
            f"({check.reason})"
        )
        problems.append((files[name], _located(files[name], problem)))
    return problems, f"; infobip checked: key accepted by {where}; {_NO_FLOW_READ}"


async def _ask(config: MomentsClientConfig, campaign_id: int) -> KeyCheck:
    async with MomentsClient(config) as client:
        return await check_api_key(client, campaign_id)
