"""``moments-pipeline validate``: every problem at once, exit codes, warehouse checks read-only."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from moments_pipeline.cli import main
from moments_pipeline.warehouse import DuckDBWarehouse, PostgresWarehouse, connect_warehouse

GOOD = """\
name: vip
source:
  table: customers
  row_id_column: record_id
identity:
  identify_by: {column: email, type: EMAIL}
  emails: [email]
  phones: [phone]
  default_region: CH
person:
  attributes: {firstName: first_name}
flow: {campaign_id: 1}
"""


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    code = main(["validate", *argv])
    captured = capsys.readouterr()
    assert captured.err == ""
    return code, captured.out.splitlines()


@pytest.fixture
def warehouse_url(tmp_path: Path) -> str:
    path = tmp_path / "warehouse.duckdb"
    warehouse = DuckDBWarehouse(path)
    frame = pd.DataFrame(
        {
            "record_id": [1],
            "email": ["a@example.com"],
            "phone": ["+41791234567"],
            "first_name": ["Ada"],
        }
    )
    warehouse.write_frame("customers", frame)
    warehouse.close()
    return f"duckdb:///{path}"


def digest(url: str) -> str:
    return hashlib.sha256(Path(url.removeprefix("duckdb:///")).read_bytes()).hexdigest()


def test_every_bad_file_is_reported_in_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audiences = tmp_path / "audiences"
    write(audiences, "a.yaml", GOOD)
    b = write(
        audiences, "b.yaml", GOOD.replace("name: vip", "name: b").replace("emails:", "emial:")
    )
    c = write(audiences, "c.yaml", GOOD.replace("name: vip", "name: c\nname: c"))
    code, out = run(capsys, "--audiences", str(audiences), "--no-warehouse")
    assert code == 1
    assert out == [
        f"{b}: line 7: identity.emial: unknown field (did you mean 'emails'?)",
        f"{c}: line 2: name: duplicate key 'name' (first given at line 1)",
        "2 problem(s) in 2 of 3 audience file(s); warehouse not checked (--no-warehouse)",
    ]


def test_good_files_exit_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    audiences = tmp_path / "audiences"
    write(audiences, "a.yaml", GOOD)
    code, out = run(capsys, "--audiences", str(audiences), "--no-warehouse")
    assert (code, out) == (0, ["1 audience file(s) OK; warehouse not checked (--no-warehouse)"])


def test_an_empty_directory_is_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(capsys, "--audiences", str(tmp_path), "--no-warehouse")
    assert code == 1
    assert out[0] == f"{tmp_path}: no audience files (*.yaml, *.yml) found"


def test_a_column_typo_is_found_in_the_warehouse_with_a_did_you_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], warehouse_url: str
) -> None:
    audiences = tmp_path / "audiences"
    file = write(
        audiences, "a.yaml", GOOD.replace("firstName: first_name", "firstName: frist_name")
    )
    query = GOOD.replace("name: vip", "name: q").replace(
        "table: customers", "query: SELECT record_id, email FROM customers"
    )
    other = write(audiences, "q.yaml", query)
    before = digest(warehouse_url)
    code, out = run(capsys, "--audiences", str(audiences), "--warehouse", warehouse_url)
    assert code == 1
    assert out == [
        f"{file}: line 11: person.attributes.firstName: column 'frist_name' not in source "
        "(did you mean 'first_name'?)",
        f"{other}: line 8: identity.phones[0]: column 'phone' not in source "
        "(the source has: record_id, email)",
        f"{other}: line 11: person.attributes.firstName: column 'first_name' not in source "
        "(the source has: record_id, email)",
        f"3 problem(s) in 2 of 2 audience file(s); warehouse checked: {warehouse_url}",
    ]
    assert digest(warehouse_url) == before  # opened read-only: nothing written


def test_a_missing_table_and_an_unopenable_warehouse_are_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], warehouse_url: str
) -> None:
    audiences = tmp_path / "audiences"
    file = write(audiences, "a.yaml", GOOD.replace("table: customers", "table: customer"))
    code, out = run(capsys, "--audiences", str(audiences), "--warehouse", warehouse_url)
    assert code == 1
    assert out[0].startswith(f"{file}: line 3: source.table: ")
    assert "customer" in out[0]
    missing = tmp_path / "nowhere.duckdb"
    code, out = run(capsys, "--audiences", str(audiences), "--warehouse", f"duckdb:///{missing}")
    assert code == 1
    assert (
        out[0]
        == f"warehouse: cannot open duckdb:///{missing}: DuckDB file {missing} does not exist"
    )
    assert not missing.exists()  # never created


def test_the_warehouse_defaults_to_the_environment(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    warehouse_url: str,
) -> None:
    audiences = tmp_path / "audiences"
    write(audiences, "a.yaml", GOOD)
    monkeypatch.setenv("MOMENTS_AUDIENCES_DIR", str(audiences))
    monkeypatch.setenv("MOMENTS_WAREHOUSE_URL", warehouse_url)
    code, out = run(capsys)
    assert (code, out) == (0, [f"1 audience file(s) OK; warehouse checked: {warehouse_url}"])


def test_warehouse_and_no_warehouse_exclude_each_other(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", "--warehouse", "duckdb:///x", "--no-warehouse"])
    assert exit_info.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_validate_imports_no_dagster(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD)
    code = (
        "import sys\n"
        "from moments_pipeline.cli import main\n"
        f"rc = main(['validate', '--audiences', {str(tmp_path)!r}, '--no-warehouse'])\n"
        "assert rc == 0, rc\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'dagster'], 'dagster imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_postgres_is_checked_in_read_only_transactions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], postgres_dsn: str
) -> None:
    writer = PostgresWarehouse(postgres_dsn)
    writer.execute("CREATE TABLE customers (record_id int, email text, phone text)")
    writer.close()
    audiences = tmp_path / "audiences"
    file = write(audiences, "a.yaml", GOOD)
    code, out = run(capsys, "--audiences", str(audiences), "--warehouse", postgres_dsn)
    assert code == 1
    assert out[0] == (
        f"{file}: line 11: person.attributes.firstName: column 'first_name' not in source "
        "(the source has: record_id, email, phone)"
    )
    assert out[1].startswith("1 problem(s) in 1 of 1 audience file(s); warehouse checked: ")
    warehouse = connect_warehouse(postgres_dsn, read_only=True)
    try:
        with pytest.raises(Exception, match="read-only transaction"):
            warehouse.execute("CREATE TABLE written (a int)")
    finally:
        warehouse.close()


def test_other_source_connections_come_from_their_environment_variable(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    warehouse_url: str,
) -> None:
    audiences = tmp_path / "audiences"
    crm = GOOD.replace("  table: customers", "  connection: crm\n  table: customers")
    write(audiences, "a.yaml", crm)
    lost = write(audiences, "b.yaml", crm.replace("crm", "lost").replace("name: vip", "name: b"))
    monkeypatch.setenv("MOMENTS_SOURCE_CRM_URL", warehouse_url)
    monkeypatch.delenv("MOMENTS_SOURCE_LOST_URL", raising=False)
    code, out = run(capsys, "--audiences", str(audiences), "--warehouse", warehouse_url)
    assert code == 1
    assert out == [
        f"{lost}: line 3: source.connection: connection 'lost' is not configured "
        "(set MOMENTS_SOURCE_LOST_URL)",
        "1 problem(s) in 1 of 2 audience file(s); warehouse checked: crm",
    ]
