"""Client configuration: where the account lives, how to authenticate, how fast to go.

Constraints: the API key is a ``SecretStr`` and never appears in a repr, a log line or an
exception; plain ``http://`` is refused for anything but loopback unless explicitly allowed;
this module is the only place in the package that reads the environment (``from_env``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import tempfile
from collections.abc import Mapping

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = ["MomentsClientConfig", "default_pacing_dir"]

_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


def _is_loopback(host: str) -> bool:
    """Return True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_pacing_dir(environ: Mapping[str, str] | None = None) -> str:
    """Where accounts' shared pacing records live unless configured otherwise.

    ``$MOMENTS_PACING_DIR`` if set; else ``$DAGSTER_HOME/moments_pacing`` (the instance's
    home, which every run of the instance shares); else ``<system temp>/moments_pipeline_pacing-
    <uid>`` (per user: the record's directory is private to its owner).
    """
    env = os.environ if environ is None else environ
    if env.get("MOMENTS_PACING_DIR"):
        return env["MOMENTS_PACING_DIR"]
    if env.get("DAGSTER_HOME"):
        return os.path.join(env["DAGSTER_HOME"], "moments_pacing")
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return os.path.join(tempfile.gettempdir(), f"moments_pipeline_pacing-{uid}")


class MomentsClientConfig(BaseModel):
    """Settings of a :class:`MomentsClient`.

    Attributes:
        base_url: The account's API host, e.g. ``https://xxxx.api.infobip.com`` (no path).
        api_key: The API key, sent as ``Authorization: App <key>``.
        connect_timeout_s: Time allowed to open a connection (nothing is sent before it).
        read_timeout_s: Time allowed to wait for a response once the request is written.
        write_timeout_s: Time allowed to write the request body.
        rate_per_s: Requests per second allowed for the account (Infobip: 10/s).
        rate_safety_margin: Fraction by which request starts are spaced wider than
            ``1 / rate_per_s`` so that network jitter cannot squeeze 11 requests into one
            second of the server's window. This is the floor of the adaptive margin.
        max_rate_safety_margin: Ceiling of the adaptive margin: after 429s the shared budget
            widens its spacing up to this, then relaxes slowly (see ``RateBudget``).
        max_in_flight: Upper bound on concurrent requests of one client.
        max_attempts: Attempts per call for the retryable cases (see the package docstring).
        backoff_initial_s: First backoff delay; doubles on each retry, with full jitter.
        backoff_max_s: Ceiling of one backoff delay.
        allow_insecure_http: Permit ``http://`` to a non-loopback host (never in production).
        pacing_dir: Directory of the account's shared pacing record (one small file per
            account, see ``_pacing_record``): every process of this host using the same
            directory shares one rate budget. None: the budget is this process's alone.
            ``default_pacing_dir()`` gives the conventional place.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    base_url: str
    api_key: SecretStr
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=30.0, gt=0)
    write_timeout_s: float = Field(default=30.0, gt=0)
    rate_per_s: float = Field(default=10.0, gt=0)
    rate_safety_margin: float = Field(default=0.01, ge=0, lt=0.5)
    max_rate_safety_margin: float = Field(default=0.06, ge=0, lt=0.5)
    max_in_flight: int = Field(default=8, ge=1, le=256)
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_initial_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    allow_insecure_http: bool = False
    pacing_dir: str | None = None

    @field_validator("base_url")
    @classmethod
    def _normalise_base_url(cls, value: str) -> str:
        url = httpx.URL(value.strip())
        if url.scheme not in ("https", "http") or not url.host:
            raise ValueError(
                "base_url must be an absolute https:// URL, e.g. https://xxxx.api.infobip.com"
            )
        if url.userinfo:
            raise ValueError("base_url must not carry credentials; pass api_key instead")
        if url.query or url.fragment:
            raise ValueError("base_url must not carry a query or fragment")
        return str(url).rstrip("/")

    @field_validator("api_key")
    @classmethod
    def _key_not_blank(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if not secret.strip():
            raise ValueError("api_key must not be empty")
        if any(ch in secret for ch in "\r\n"):
            raise ValueError("api_key must not contain line breaks")
        return value

    @model_validator(mode="after")
    def _refuse_plain_http(self) -> MomentsClientConfig:
        url = httpx.URL(self.base_url)
        if url.scheme == "http" and not self.allow_insecure_http and not _is_loopback(url.host):
            raise ValueError(
                f"refusing plain http:// to non-loopback host {url.host!r}: the API key would "
                "travel in clear text; use https:// (or allow_insecure_http=True for a test rig)"
            )
        return self

    @property
    def key_fingerprint(self) -> str:
        """A short, non-reversible fingerprint of the API key (safe to log)."""
        digest = hashlib.sha256(self.api_key.get_secret_value().encode()).hexdigest()
        return digest[:12]

    @property
    def account_id(self) -> str:
        """Identity of the rate budget: base URL plus key fingerprint, never the key."""
        return f"{self.base_url}#{self.key_fingerprint}"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> MomentsClientConfig:
        """Build a config from ``INFOBIP_BASE_URL`` and ``INFOBIP_API_KEY``.

        Args:
            environ: Mapping to read instead of ``os.environ`` (for tests).
            **overrides: Other config fields (timeouts, rate, ...).

        Raises:
            ValueError: If a variable is missing or empty (the message names it, never its value).
        """
        env = os.environ if environ is None else environ
        missing = [name for name in ("INFOBIP_BASE_URL", "INFOBIP_API_KEY") if not env.get(name)]
        if missing:
            raise ValueError(f"environment variable(s) not set: {', '.join(missing)}")
        return cls.model_validate(
            {"base_url": env["INFOBIP_BASE_URL"], "api_key": env["INFOBIP_API_KEY"], **overrides}
        )
