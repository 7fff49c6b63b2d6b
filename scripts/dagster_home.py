"""The project's DAGSTER_HOME (``.dagster_home/``), for ``make dev``, ``make demo`` and by hand.

``prepare()`` makes the folder and links the repository's instance file into it:
``dagster.yaml`` (SQLite storage under DAGSTER_HOME), or ``dagster.postgres.yaml`` when
``MOMENTS_DAGSTER_PG_URL`` is set (Dagster's storage on PostgreSQL). One home for every way the
project is started, so run history survives between ``make demo`` and ``make dev``, and no
``dagster dev`` runs without DAGSTER_HOME (which is what leaves ``.tmp_dagster_home_*`` folders).

``python scripts/dagster_home.py`` prepares it and prints the path (``make dagster-home``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOME = REPO / ".dagster_home"
PG_URL_ENV = "MOMENTS_DAGSTER_PG_URL"


def instance_file() -> Path:
    """The instance file this environment selects."""
    name = "dagster.postgres.yaml" if os.environ.get(PG_URL_ENV) else "dagster.yaml"
    return REPO / name


def _psycopg2_url() -> None:
    # dagster-postgres speaks psycopg2 (its NOTIFY binds parameters client-side), but
    # SQLAlchemy 2.1 reads a plain postgresql:// URL as psycopg 3, whose server-side binding
    # fails the first run event. Name the driver for Dagster's processes started from here.
    url = os.environ.get(PG_URL_ENV, "")
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            os.environ[PG_URL_ENV] = "postgresql+psycopg2://" + url.removeprefix(scheme)


def prepare(home: Path = HOME) -> Path:
    """Create ``home`` with ``dagster.yaml`` linked to the selected instance file; return it.

    With ``MOMENTS_DAGSTER_PG_URL`` set, a ``postgresql://`` URL in it is rewritten (in this
    process's environment, inherited by what it starts) to name the psycopg2 driver.
    """
    _psycopg2_url()
    home.mkdir(parents=True, exist_ok=True)
    link = home / "dagster.yaml"
    target = os.path.relpath(instance_file(), home)
    if link.is_symlink() or link.exists():
        if link.is_symlink() and os.readlink(link) == target:
            return home
        link.unlink()
    link.symlink_to(target)
    return home


if __name__ == "__main__":
    print(prepare())
    sys.exit(0)
