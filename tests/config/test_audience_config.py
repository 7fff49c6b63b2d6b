"""Audience YAML: loading, validation errors naming file and field, directory loading."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from moments_pipeline.config import (
    AudienceConfig,
    ConfigError,
    ConflictPolicy,
    IdentifierType,
    load_audience,
    load_audiences,
    parse_audience,
)

VALID = """
name: vip_customers
description: Customers with a VIP tier
source:
  table: analytics.vip_customers
  row_id_column: customer_id
identity:
  identify_by: {column: email, type: EMAIL}
  external_id: customer_id
  emails: [email, work_email]
  phones: [mobile]
  default_region: CH
  region_column: country_code
person:
  attributes: {firstName: first_name, birthDate: birth_date}
  custom_attributes: {"Contract Expiry": contract_expiry}
  tags: [VIP]
variables: {orderNumber: last_order}
flow: {campaign_id: 200000000000001}
conflicts: {policy: keep_most_recent, recency_column: updated_at}
report: {deadline_s: 120, max_rejection_rate: 0.1}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def base() -> dict:
    return {
        "name": "a",
        "source": {"table": "s.t"},
        "identity": {"identify_by": {"column": "email", "type": "EMAIL"}},
        "flow": {"campaign_id": 1},
    }


def test_valid_file_loads_with_every_section(tmp_path: Path) -> None:
    audience = load_audience(write(tmp_path, "vip.yaml", VALID))
    assert audience.name == "vip_customers"
    assert audience.identity.identify_by.type is IdentifierType.EMAIL
    assert audience.conflicts.policy is ConflictPolicy.KEEP_MOST_RECENT
    assert audience.flow.campaign_id == 200000000000001
    assert audience.source.connection == "warehouse"
    assert audience.source_columns() == [
        "customer_id",
        "email",
        "work_email",
        "mobile",
        "country_code",
        "first_name",
        "birth_date",
        "contract_expiry",
        "last_order",
        "updated_at",
    ]


def test_error_names_file_and_indexed_field(tmp_path: Path) -> None:
    path = write(
        tmp_path, "vip.yaml", VALID.replace("phones: [mobile]", "phones: [mobile, 'x; drop']")
    )
    with pytest.raises(ConfigError) as info:
        load_audience(path)
    message = str(info.value)
    assert message.startswith(f"{path}: line 11: identity.phones[1]: ")
    assert "'x; drop' is not a plain identifier" in message


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(bogus=1), "bogus: unknown field (allowed: name, description, "),
        (
            lambda d: d["source"].update(query="select 1"),
            "source: exactly one of 'table' or 'query'",
        ),
        (lambda d: d["source"].pop("table"), "source: exactly one of 'table' or 'query'"),
        (lambda d: d["source"].update(table="s.t; drop table x"), "source.table: "),
        (lambda d: d.update(name="1abc"), "name: "),
        (lambda d: d["flow"].update(campaign_id=0), "flow.campaign_id: "),
        (lambda d: d["flow"].update(campaign_id=2**63), "flow.campaign_id: "),
        (
            lambda d: d.update(conflicts={"policy": "keep_most_recent"}),
            "conflicts: policy 'keep_most_recent' needs",
        ),
        (lambda d: d.update(conflicts={"policy": "merge_all"}), "conflicts.policy: "),
        (lambda d: d.update(report={"max_rejection_rate": 1.5}), "report.max_rejection_rate: "),
        (
            lambda d: d["identity"].update(phones=["m"]),
            "identity: phone columns need 'default_region'",
        ),
        (lambda d: d["identity"].update(default_region="che"), "identity.default_region: "),
        (
            lambda d: d["identity"]["identify_by"].update(type="LINE"),
            "identity.identify_by: 'sender' is required",
        ),
        (
            lambda d: d.update(person={"attributes": {"shoeSize": "s"}}),
            "person: unknown person attribute",
        ),
        (lambda d: d.update(variables={"v": "bad-col"}), "variables.v: "),
    ],
)
def test_invalid_definitions_name_the_field(change, field: str) -> None:
    data = base()
    change(data)
    with pytest.raises(ConfigError) as info:
        parse_audience(data, "audiences/a.yaml")
    assert f"audiences/a.yaml: {field}" in str(info.value)


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", "name: a\nsource: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_audience(path)
    assert str(info.value).startswith(f"{path}: line ")


def test_non_mapping_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_audience(write(tmp_path, "list.yaml", "- a\n- b\n"))


def test_directory_loader_reads_every_yaml_in_name_order(tmp_path: Path) -> None:
    write(tmp_path, "b.yaml", VALID)
    write(tmp_path, "a.yml", VALID.replace("name: vip_customers", "name: churned"))
    write(tmp_path, "notes.txt", "not an audience")
    audiences = load_audiences(tmp_path)
    assert list(audiences) == ["churned", "vip_customers"]
    assert all(isinstance(a, AudienceConfig) for a in audiences.values())


def test_directory_loader_refuses_duplicate_names(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", VALID)
    second = write(tmp_path, "b.yaml", VALID)
    with pytest.raises(ConfigError) as info:
        load_audiences(tmp_path)
    assert str(info.value).startswith(
        f"{second}: line 2: name: audience 'vip_customers' is already defined"
    )


def test_models_are_frozen() -> None:
    audience = parse_audience(base())
    with pytest.raises(ValueError, match="frozen"):
        audience.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT 1 AS x; DELETE FROM moments_sync_outbox", "must be one statement, found 2"),
        ("DELETE FROM customers", "must be a SELECT, found DELETE"),
        ("DROP TABLE customers", "must be a SELECT, found DROP"),
        ("SELEC email FROM customers", "could not be parsed"),
    ],
)
def test_source_query_must_be_one_select(query: str, message: str) -> None:
    data = base()
    data["source"] = {"query": query}
    with pytest.raises(ConfigError) as info:
        parse_audience(data, "audiences/a.yaml")
    assert f"audiences/a.yaml: source.query: query {message}" in str(info.value)


def test_source_query_may_be_a_with_select() -> None:
    data = base()
    data["source"] = {"query": "WITH r AS (SELECT * FROM crm.customers) SELECT * FROM r"}
    assert parse_audience(data, "audiences/a.yaml").source.query is not None
