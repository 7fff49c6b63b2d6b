"""Resources build the plain client and warehouse, and never show a secret."""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg
import pytest

from moments_pipeline.dagster import MomentsResource, WarehouseResource

SECRET_KEY = "k3y-that-must-never-show-9f8e7d"
PG_PASSWORD = "pw-never-shown-4c3b2a"


def test_moments_resource_builds_client_config_from_env_vars(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INFOBIP_BASE_URL", "http://127.0.0.1:8089/")
    monkeypatch.setenv("INFOBIP_API_KEY", SECRET_KEY)
    seen: dict[str, object] = {}

    @dg.asset
    def probe(moments: MomentsResource) -> None:
        config = moments.client_config()
        seen["base_url"] = config.base_url
        seen["key"] = config.api_key.get_secret_value()
        seen["rate"] = config.rate_per_s
        seen["repr"] = repr(moments) + str(moments) + repr(config) + repr(moments.get_client())
        seen["describe"] = moments.describe()

    resource = MomentsResource(
        base_url=dg.EnvVar("INFOBIP_BASE_URL"), api_key=dg.EnvVar("INFOBIP_API_KEY"), rate_per_s=7
    )
    result = dg.materialize([probe], resources={"moments": resource})
    assert result.success
    assert seen["base_url"] == "http://127.0.0.1:8089"
    assert seen["key"] == SECRET_KEY
    assert seen["rate"] == 7
    assert SECRET_KEY not in str(seen["repr"])
    assert SECRET_KEY not in str(seen["describe"])
    assert "key_fingerprint" in seen["describe"]  # type: ignore[operator]


def test_moments_resource_repr_and_errors_hide_the_key(caplog: pytest.LogCaptureFixture) -> None:
    resource = MomentsResource(base_url="http://127.0.0.1:1", api_key=SECRET_KEY)
    assert SECRET_KEY not in repr(resource)
    assert SECRET_KEY not in str(resource)
    bad = MomentsResource(base_url="ftp://nowhere", api_key=SECRET_KEY)
    with caplog.at_level(logging.DEBUG), pytest.raises(ValueError) as excinfo:
        bad.client_config()
    assert SECRET_KEY not in str(excinfo.value)
    assert SECRET_KEY not in caplog.text


def test_plain_http_to_a_remote_host_is_refused() -> None:
    resource = MomentsResource(base_url="http://api.example.com", api_key=SECRET_KEY)
    with pytest.raises(ValueError, match="plain http"):
        resource.client_config()
    allowed = MomentsResource(
        base_url="http://api.example.com", api_key=SECRET_KEY, allow_insecure_http=True
    )
    assert allowed.client_config().base_url == "http://api.example.com"


def test_warehouse_resource_opens_duckdb_and_hides_nothing_it_need_not(tmp_path: Path) -> None:
    resource = WarehouseResource(url=f"duckdb:///{tmp_path / 'w.duckdb'}")
    with resource.open() as warehouse:
        warehouse.execute("CREATE TABLE t (x INTEGER)")
        warehouse.execute("INSERT INTO t VALUES (?)", [41])
        assert warehouse.fetch_all("SELECT x + 1 FROM t") == [(42,)]
    assert resource.redacted_url.endswith("w.duckdb")


def test_warehouse_resource_masks_the_postgres_password(postgres_dsn: str) -> None:
    import psycopg

    info = psycopg.conninfo.conninfo_to_dict(postgres_dsn)
    resource = WarehouseResource(url=postgres_dsn)
    assert "url" not in repr(resource)
    if info.get("password"):
        assert str(info["password"]) not in resource.redacted_url
    with resource.open() as warehouse:
        assert warehouse.fetch_all("SELECT 1 + 1") == [(2,)]
    # A DSN with a password is redacted even when the server is not reachable.
    remote = WarehouseResource(url=f"postgresql://user:{PG_PASSWORD}@db.invalid:5432/x")
    assert PG_PASSWORD not in remote.redacted_url
    assert PG_PASSWORD not in repr(remote)
