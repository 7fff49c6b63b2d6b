"""The project's Dagster instance: dagster.yaml in a DAGSTER_HOME, SQLite or PostgreSQL storage.

``scripts/dagster_home.py`` (used by ``make dev`` and ``make demo``) links the repository's
instance file into the home; run history outlives the process that made it, on both storages.
"""

from __future__ import annotations

import os
import sys
import urllib.parse
from pathlib import Path

import dagster as dg
import psycopg
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import dagster_home  # noqa: E402


@dg.op
def _noop() -> None: ...


@dg.job
def _tiny_job() -> None:
    _noop()


def _run_and_read_back(home: Path) -> dg.DagsterInstance:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = _tiny_job.execute_in_process(instance=instance, tags={"moments/test": "x"})
        assert result.success
        run_id = result.run_id
    # A new instance on the same home (the next `make dev`) sees the run.
    later = dg.DagsterInstance.from_config(str(home))
    run = later.get_run_by_id(run_id)
    assert run is not None and run.tags["moments/test"] == "x"
    return later


def test_the_home_links_the_repository_dagster_yaml_and_keeps_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(dagster_home.PG_URL_ENV, raising=False)
    home = dagster_home.prepare(tmp_path / "home")
    link = home / "dagster.yaml"
    assert link.is_symlink() and link.resolve() == REPO / "dagster.yaml"
    assert dagster_home.prepare(home) == home  # idempotent
    with _run_and_read_back(home) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert Path(instance.root_directory) == home
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert not instance.telemetry_enabled


def test_the_default_home_is_git_ignored() -> None:
    assert dagster_home.HOME == REPO / ".dagster_home"
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert ".dagster_home/" in ignored
    assert ".tmp_dagster_home_*/" in ignored


@pytest.mark.postgres
def test_with_the_env_var_dagster_storage_is_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_dsn: str
) -> None:
    info = psycopg.conninfo.conninfo_to_dict(postgres_dsn)
    password = f":{info['password']}" if info.get("password") else ""
    # The host may be a socket directory: given as a query parameter, as libpq URLs allow.
    query = {k: info[k] for k in ("host", "port") if info.get(k)}
    url = (
        f"postgresql://{info.get('user', 'postgres')}{password}@/{info['dbname']}"
        f"?{urllib.parse.urlencode(query)}"
    )
    monkeypatch.setenv(dagster_home.PG_URL_ENV, url)
    home = dagster_home.prepare(tmp_path / "home")
    assert (home / "dagster.yaml").resolve() == REPO / "dagster.postgres.yaml"
    # dagster-postgres needs psycopg2 named: SQLAlchemy 2.1 reads postgresql:// as psycopg 3.
    assert os.environ[dagster_home.PG_URL_ENV].startswith("postgresql+psycopg2://")
    # The URL is read by Dagster from the environment, never written into the file.
    assert url not in (home / "dagster.yaml").read_text()
    with _run_and_read_back(home) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    with psycopg.connect(postgres_dsn) as conn:
        (count,) = conn.execute("SELECT count(*) FROM runs").fetchone() or (0,)
    assert count == 1
    # Switching back is a matter of the variable: the link follows it.
    monkeypatch.delenv(dagster_home.PG_URL_ENV)
    assert (dagster_home.prepare(home) / "dagster.yaml").resolve() == REPO / "dagster.yaml"
    assert os.readlink(home / "dagster.yaml") == os.path.relpath(REPO / "dagster.yaml", home)
