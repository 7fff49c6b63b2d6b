"""What the catalog shows: descriptions, owners, kinds, tags and code references from the YAML.

And the YAML's catalog fields are validated while loading, each bad value reported with its
file, line and field.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.metadata.source_code import CodeReferencesMetadataSet

from moments_pipeline.config import ConfigError, field_lines, load_audience, load_audiences
from moments_pipeline.dagster import MomentsResource, WarehouseResource
from moments_pipeline.dagster.definitions import build_definitions

REPO = Path(__file__).resolve().parents[2]
AUDIENCES = REPO / "audiences"
STEPS = ("source", "participants", "quarantine", "flow_sync", "flow_report")

BASE = """\
name: people
description: People who signed up, into the welcome flow.
source: {table: signups, row_id_column: rid}
identity:
  identify_by: {column: email, type: EMAIL}
flow: {campaign_id: 200000000000001}
"""


def _moments() -> MomentsResource:
    return MomentsResource(base_url="http://127.0.0.1:9", api_key="k")


def _write(tmp_path: Path, extra: str, name: str = "people.yaml") -> Path:
    folder = tmp_path / "audiences"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(BASE + extra)
    return path


def _problem(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_audience(path)
    return str(caught.value)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("schedule: {cron: '0 25 * * *'}\n", "line 7: schedule.cron: '0 25 * * *': hour: 25"),
        ("schedule: {cron: '0 6 * *'}\n", "line 7: schedule.cron: '0 6 * *' is not a cron"),
        ("schedule: {cron: '0 6 * * mon-xyz'}\n", "day of week: 'xyz' is not a number"),
        ("schedule: {cron: '*/0 * * * *'}\n", "a step of 0 never fires"),
        ("schedule: {cron: '0 6 L * *'}\n", "day of month: 'L' is not a number"),
        (
            "schedule:\n  cron: '0 6 * * *'\n  timezone: Europe/Zurch\n",
            "line 9: schedule.timezone: unknown time zone 'Europe/Zurch'",
        ),
        ("schedule: {cron: '0 6 * * *', tz: UTC}\n", "schedule.tz: unknown field"),
        ("owners: [crm]\n", "line 7: owners[0]: 'crm' is not an owner"),
        ("tags: {'bad key': x}\n", "line 7: tags: tag key 'bad key' is not"),
        ("tags: {channel: 'e mail'}\n", "tag 'channel': value 'e mail' is not"),
        ("tags: {moments/audience: other}\n", "tag key 'moments/audience': the namespaces"),
    ],
)
def test_bad_catalog_fields_name_file_line_and_field(
    tmp_path: Path, extra: str, expected: str
) -> None:
    path = _write(tmp_path, extra)
    message = _problem(path)
    assert message.startswith(f"{path}: "), message
    assert expected in message, message


def test_good_catalog_fields_load() -> None:
    audience = load_audiences(AUDIENCES)["loyalty_customers"]
    assert audience.schedule is not None
    assert (audience.schedule.cron, audience.schedule.timezone) == ("0 6 * * *", "Europe/Zurich")
    assert audience.schedule.default_status == "STOPPED"
    assert audience.owners == ("team:crm",)
    assert audience.tags == {"channel": "email", "programme": "loyalty"}


def test_assets_carry_description_owners_tags_kinds_and_code_references(tmp_path: Path) -> None:
    folder = tmp_path / "audiences"
    folder.mkdir()
    shutil.copy(AUDIENCES / "loyalty_customers.yaml", folder / "loyalty_customers.yaml")
    warehouse = WarehouseResource(url=f"duckdb:///{tmp_path / 'w.duckdb'}")
    defs = build_definitions(folder, warehouse=warehouse, moments=_moments())
    graph = defs.resolve_asset_graph()
    yaml_file = folder / "loyalty_customers.yaml"
    name_line = field_lines(yaml_file)["name"]
    description = load_audience(yaml_file).description
    assert description
    kinds: dict[str, set[str]] = {}
    for step in STEPS:
        spec = graph.get(dg.AssetKey(["loyalty_customers", step])).to_asset_spec()
        assert spec.description is not None and spec.description.startswith(description)
        assert list(spec.owners) == ["team:crm"]
        assert spec.tags["channel"] == "email" and spec.tags["programme"] == "loyalty"
        assert spec.tags["moments/audience"] == "loyalty_customers"
        kinds[step] = set(spec.kinds)
        refs = CodeReferencesMetadataSet.extract(spec.metadata).code_references
        assert refs is not None
        (ref,) = refs.code_references
        assert isinstance(ref, dg.LocalFileCodeReference)
        assert (Path(ref.file_path), ref.line_number) == (yaml_file.absolute(), name_line)
    assert kinds["source"] == {"sql", "duckdb"}
    assert kinds["participants"] == kinds["quarantine"] == {"pandas", "duckdb"}
    assert kinds["flow_sync"] == {"infobip"}
    assert kinds["flow_report"] == {"infobip", "duckdb"}


def test_kinds_follow_the_warehouse_urls_even_through_env_vars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "audiences"
    folder.mkdir()
    (folder / "crm.yaml").write_text(
        BASE.replace("source: {table: signups,", "source: {connection: crm, table: signups,")
    )
    monkeypatch.setenv("TEST_LEDGER_URL", "postgresql://u:secret-pw@127.0.0.1:1/ledger")
    warehouse = WarehouseResource(
        url=dg.EnvVar("TEST_LEDGER_URL"), sources={"crm": f"duckdb:///{tmp_path / 'crm.duckdb'}"}
    )
    defs = build_definitions(folder, warehouse=warehouse, moments=_moments())
    graph = defs.resolve_asset_graph()
    source = graph.get(dg.AssetKey(["people", "source"])).to_asset_spec()
    participants = graph.get(dg.AssetKey(["people", "participants"])).to_asset_spec()
    # Read from the DuckDB source, stored in the PostgreSQL ledger warehouse.
    assert set(source.kinds) == {"sql", "duckdb", "postgres"}
    assert set(participants.kinds) == {"pandas", "postgres"}
    assert "secret-pw" not in repr(source) + repr(participants)


def test_an_audience_without_catalog_fields_keeps_plain_assets(tmp_path: Path) -> None:
    path = _write(tmp_path, "")
    defs = build_definitions(
        path.parent,
        warehouse=WarehouseResource(url=f"duckdb:///{tmp_path / 'w.duckdb'}"),
        moments=_moments(),
    )
    spec = defs.resolve_asset_graph().get(dg.AssetKey(["people", "flow_sync"])).to_asset_spec()
    assert list(spec.owners) == []
    assert {k: v for k, v in spec.tags.items() if not k.startswith("dagster/kind/")} == {
        "moments/audience": "people"
    }
    assert not list(defs.schedules or [])
