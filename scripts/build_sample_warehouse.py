"""Build the sample DuckDB warehouse from the committed CSVs in ``data_samples/``.

Usage: ``.venv/bin/python scripts/build_sample_warehouse.py [PATH]`` (default
``.demo/warehouse.duckdb``). The tables are replaced on each run, so the script is safe to
re-run. Text columns stay text exactly as exported (whitespace, case and all): cleaning them is
the pipeline's job, not the loader's. ``sample_frames()`` is importable so the tests can load the
same data into PostgreSQL.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES_DIR = REPO_ROOT / "data_samples"
DEFAULT_PATH = REPO_ROOT / ".demo" / "warehouse.duckdb"

# table -> {column: pandas dtype} for the non-text columns; everything else is nullable text.
TYPED_COLUMNS: dict[str, dict[str, str]] = {
    "customers": {"marketing_opt_in": "boolean", "signup_date": "datetime64[ms]"},
    "cart_events": {"cart_value": "float64", "abandoned_at": "datetime64[ms, UTC]"},
    "newsletter_signups": {"signed_up_at": "datetime64[ms]"},
    "store_signups": {},  # a form source (audiences/forms/store_signups.yaml)
    "form_view_events": {"viewed_at": "datetime64[ms]"},  # audiences/forms/kiosk_views.yaml
    "subscribers": {},  # the mirror audience (audiences/active_subscribers.yaml)
    # The daily-partitioned audience (audiences/newsletter_daily.yaml).
    "daily_signups": {"signed_up_at": "datetime64[ms]", "updated_at": "datetime64[ms]"},
}


def sample_frames(samples_dir: Path = SAMPLES_DIR) -> dict[str, pd.DataFrame]:
    """Read every sample CSV into a DataFrame keyed by table name.

    Empty CSV fields become NULL; non-empty text is kept verbatim (no trimming).
    """
    frames: dict[str, pd.DataFrame] = {}
    for table, typed in TYPED_COLUMNS.items():
        raw = pd.read_csv(
            samples_dir / f"{table}.csv", dtype=str, keep_default_na=False, na_values=[""]
        )
        for column, dtype in typed.items():
            if dtype.startswith("datetime"):
                raw[column] = pd.to_datetime(raw[column], utc="UTC" in dtype).astype(dtype)
            elif dtype == "boolean":
                raw[column] = raw[column].str.lower().map({"true": True, "false": False})
                raw[column] = raw[column].astype("boolean")
            else:
                raw[column] = raw[column].astype(dtype)
        frames[table] = raw
    return frames


def build_duckdb(path: Path, samples_dir: Path = SAMPLES_DIR) -> dict[str, int]:
    """(Re)create the sample tables in the DuckDB file at ``path``; return rows per table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with duckdb.connect(str(path)) as conn:
        for table, frame in sample_frames(samples_dir).items():
            conn.register("sample_frame", frame)
            conn.execute(f'CREATE OR REPLACE TABLE "{table}" AS SELECT * FROM sample_frame')
            conn.unregister("sample_frame")
            counts[table] = len(frame)
    return counts


def main(argv: list[str] | None = None) -> int:
    """Build the warehouse and print the row count of each table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH)
    args = parser.parse_args(argv)
    for table, count in build_duckdb(args.path).items():
        print(f"{table}: {count} rows -> {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
