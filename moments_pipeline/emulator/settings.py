"""Settings of the emulator (pydantic) and the YAML/JSON config file loader.

Secrets (API keys, Basic passwords) are ``SecretStr`` so they never show in reprs or logs.
A bad config file raises ``ConfigError`` naming the file and the offending field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError

__all__ = [
    "DEFAULT_CUSTOM_ATTRIBUTES",
    "SPEC_FLOWS",
    "BasicUser",
    "ConfigError",
    "EmulatorSettings",
    "FaultSettings",
    "FlowConfig",
    "QueuedFault",
    "load_settings",
]

FaultKind = Literal["500", "502", "503", "429", "drop_before", "drop_after", "latency"]


def _all_error_statuses() -> list[Literal[500, 502, 503]]:
    return [500, 502, 503]


def _form_with_id(form: dict[str, Any]) -> dict[str, Any]:
    """A configured form must carry a non-blank string ``id`` (the rest has defaults)."""
    form_id = form.get("id")
    if not isinstance(form_id, str) or not form_id.strip():
        raise ValueError("field 'id' is required: a non-blank string (the form's id)")
    return form


ConfiguredForm = Annotated[dict[str, Any], AfterValidator(_form_with_id)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FlowConfig(_Strict):
    """A flow (campaign) of the account.

    Attributes:
        campaign_id: The spec's ``campaignId``.
        active: Inactive flows answer 404 40401 like missing ones.
        allow_reentry: Whether a person already in the flow may be added again.
        name: Free label for humans.
    """

    campaign_id: int
    active: bool = True
    allow_reentry: bool = False
    name: str | None = None


class BasicUser(_Strict):
    """Credentials accepted with ``Authorization: Basic``."""

    username: str
    password: SecretStr


class QueuedFault(_Strict):
    """A deterministic fault for the next ``count`` matching requests.

    Attributes:
        kind: ``500``/``502``/``503`` (GENERAL_ERROR body), ``429``, ``drop_before`` (connection
            dropped, request not processed), ``drop_after`` (processed, then dropped: the
            ambiguous case) or ``latency`` (answer delayed by ``latency_ms`` after processing).
        count: How many matching requests it applies to.
        operation: Spec operationId the fault is limited to (``None``: any API request).
        latency_ms: Delay of a ``latency`` fault.
    """

    kind: FaultKind
    count: int = Field(default=1, ge=1)
    operation: str | None = None
    latency_ms: int | None = Field(default=None, ge=0)


class FaultSettings(_Strict):
    """Random faults (seeded) plus a queue of deterministic ones.

    Attributes:
        latency_ms: Added to every API answer, after processing.
        error_rate: Share of API requests answered 500/502/503 (not processed).
        error_statuses: Statuses drawn from for ``error_rate``.
        too_many_requests_rate: Share answered 429 on top of the rate limit.
        drop_before_rate: Share whose connection is dropped before processing.
        drop_after_rate: Share processed, then dropped (ambiguous for the client).
        report_delay_s: Extra delay before an operation is processed.
        seed: Seed of the random draws (soak runs are reproducible).
        queue: Deterministic faults applied before the random ones, in order.
    """

    latency_ms: int = Field(default=0, ge=0)
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    error_statuses: list[Literal[500, 502, 503]] = Field(default_factory=_all_error_statuses)
    too_many_requests_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    drop_before_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    drop_after_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    report_delay_s: float = Field(default=0.0, ge=0.0)
    seed: int | None = None
    queue: list[QueuedFault] = Field(default_factory=list)


# The spec's own example identifiers work against a fresh emulator.
SPEC_FLOWS: tuple[FlowConfig, ...] = (
    FlowConfig(campaign_id=200000000000001, name="spec example (add-flow-participants)"),
    FlowConfig(campaign_id=10159347, name="spec example (remove-people-from-flow)"),
)
DEFAULT_CUSTOM_ATTRIBUTES: tuple[str, ...] = ("Contract Expiry", "Company")


class EmulatorSettings(_Strict):
    """Everything the emulator can be configured with.

    Attributes:
        api_keys: Keys accepted with ``Authorization: App <key>``.
        basic_users: Credentials accepted with ``Authorization: Basic``.
        rate_limit_per_s: Requests per second per account on the rate-limited operations
            (None: off).
        rate_limit_jitter_ms: Tolerance of the sliding window (see ``ratelimit``).
        seed_spec_examples: Seed the spec's example flows (and forms).
        flows: Flows in addition to (or overriding) the spec's examples.
        forms: Forms (ApiFormDto dicts, ``id`` required) in addition to the spec's example
            forms; fields left out get ``forms_seed.complete_form``'s defaults.
        custom_attributes: Custom attribute names defined for the account.
        credits: Credit balance (one per accepted participant); None: unlimited.
        processing_delay_s: Time between accepting and processing an add operation.
        processing_slice: Participants the background worker processes before letting the
            event loop answer requests again (the processing pace under load).
        report_retention_days: Reports older than this answer 404 (spec: 30 days).
        callback_retries: Extra attempts at POSTing a report to ``notifyUrl``.
        callback_backoff_s: First retry delay, doubled on each retry.
        callback_timeout_s: Timeout of one callback POST.
        faults: Fault injection.
        state_path: Journal file making state survive restarts (None: in memory only).
        record_exchanges: Keep every exchange in ``Emulator.exchanges`` (contract tests).
        request_log_size: Entries kept in the request log.
    """

    api_keys: list[SecretStr] = Field(default_factory=list)
    basic_users: list[BasicUser] = Field(default_factory=list)
    rate_limit_per_s: float | None = Field(default=10.0, gt=0)
    rate_limit_jitter_ms: float = Field(default=50.0, ge=0, lt=1000)
    seed_spec_examples: bool = True
    flows: list[FlowConfig] = Field(default_factory=list)
    forms: list[ConfiguredForm] = Field(default_factory=list)
    custom_attributes: list[str] = Field(default_factory=lambda: list(DEFAULT_CUSTOM_ATTRIBUTES))
    credits: int | None = Field(default=None, ge=0)
    processing_delay_s: float = Field(default=0.2, ge=0)
    processing_slice: int = Field(default=200, ge=1)
    report_retention_days: float = Field(default=30.0, gt=0)
    callback_retries: int = Field(default=3, ge=0)
    callback_backoff_s: float = Field(default=0.2, ge=0)
    callback_timeout_s: float = Field(default=5.0, gt=0)
    faults: FaultSettings = Field(default_factory=FaultSettings)
    state_path: Path | None = None
    record_exchanges: bool = False
    request_log_size: int = Field(default=10_000, ge=0)

    def all_flows(self) -> dict[int, FlowConfig]:
        """Return the configured flows by campaignId (config overrides the spec examples)."""
        flows = {f.campaign_id: f for f in SPEC_FLOWS} if self.seed_spec_examples else {}
        flows.update({f.campaign_id: f for f in self.flows})
        return flows


class ConfigError(ValueError):
    """A config file could not be read or validated; the message names file and field."""


def load_settings(path: Path, **overrides: Any) -> EmulatorSettings:
    """Load ``EmulatorSettings`` from a YAML or JSON file.

    Args:
        path: The config file (``.json`` is read as JSON, anything else as YAML).
        overrides: Fields that take precedence over the file (e.g. from the command line).

    Raises:
        ConfigError: The file is missing, unparsable or invalid (message names the field).
    """
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    try:
        data = orjson.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    data.update(overrides)
    try:
        return EmulatorSettings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{path}: invalid emulator config: {problems}") from None
