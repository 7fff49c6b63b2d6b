"""MomentsClientConfig: URL rules, secret handling, environment reading."""

from __future__ import annotations

import pydantic
import pytest

from moments_pipeline.infobip import MomentsClientConfig

KEY = "cfg-secret-key-0123456789abcdef"


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080", "http://127.5.6.7", "http://[::1]:9000", "http://localhost:1234"],
)
def test_plain_http_is_allowed_for_loopback(url: str) -> None:
    config = MomentsClientConfig(base_url=url, api_key=KEY)
    assert config.base_url.startswith("http://")


@pytest.mark.parametrize("url", ["http://xyz.api.infobip.com", "http://10.0.0.5", "http://[::2]"])
def test_plain_http_is_refused_for_other_hosts(url: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="refusing plain http"):
        MomentsClientConfig(base_url=url, api_key=KEY)


def test_plain_http_can_be_allowed_explicitly() -> None:
    config = MomentsClientConfig(
        base_url="http://xyz.api.infobip.com", api_key=KEY, allow_insecure_http=True
    )
    assert config.base_url == "http://xyz.api.infobip.com"


def test_https_personal_host_is_normalised() -> None:
    config = MomentsClientConfig(base_url="https://abcd.api.infobip.com/", api_key=KEY)
    assert config.base_url == "https://abcd.api.infobip.com"
    assert config.rate_per_s == 10


@pytest.mark.parametrize(
    "url", ["ftp://x.api.infobip.com", "abcd.api.infobip.com", "https://u:p@x.api.infobip.com"]
)
def test_bad_base_urls_are_refused(url: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="base_url"):
        MomentsClientConfig(base_url=url, api_key=KEY)


def test_key_never_in_repr_str_or_dump() -> None:
    config = MomentsClientConfig(base_url="https://abcd.api.infobip.com", api_key=KEY)
    for text in (repr(config), str(config), str(config.model_dump()), config.model_dump_json()):
        assert KEY not in text
    assert KEY not in config.account_id
    assert config.key_fingerprint in config.account_id


def test_key_not_echoed_by_validation_errors() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        MomentsClientConfig(base_url="http://10.1.1.1", api_key=KEY, rate_per_s=-1)
    assert KEY not in str(info.value)
    assert KEY not in repr(info.value)


def test_empty_key_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="api_key"):
        MomentsClientConfig(base_url="https://abcd.api.infobip.com", api_key="  ")


def test_from_env_reads_both_variables() -> None:
    env = {"INFOBIP_BASE_URL": "https://abcd.api.infobip.com", "INFOBIP_API_KEY": KEY}
    config = MomentsClientConfig.from_env(env, read_timeout_s=12)
    assert config.api_key.get_secret_value() == KEY
    assert config.read_timeout_s == 12


def test_from_env_names_the_missing_variable() -> None:
    with pytest.raises(ValueError, match="INFOBIP_API_KEY") as info:
        MomentsClientConfig.from_env({"INFOBIP_BASE_URL": "https://abcd.api.infobip.com"})
    assert "INFOBIP_BASE_URL" not in str(info.value)


def test_from_env_uses_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFOBIP_BASE_URL", "https://efgh.api.infobip.com")
    monkeypatch.setenv("INFOBIP_API_KEY", KEY)
    assert MomentsClientConfig.from_env().base_url == "https://efgh.api.infobip.com"
