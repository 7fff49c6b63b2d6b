"""The async Moments API client: seven operations, one shared rate budget, careful retries.

Constraints: never re-sends a non-idempotent body whose fate is unknown (see ``_retry``); every
request start goes through the account's :class:`RateBudget`; the API key lives only in the
``Authorization`` header and is scrubbed from any text that reaches an exception; request URLs
(which can carry personal data in DELETE queries) are not logged here, operation names are.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol
from urllib.parse import quote

import httpx
import pydantic

from ._config import MomentsClientConfig
from ._encoding import encode_add_participants, encode_form_data
from ._errors import (
    AmbiguousSendError,
    MomentsError,
    RateLimitedError,
    TransportError,
    error_from_response,
)
from ._issue import IssueMark
from ._models import (
    AddFlowParticipantsResponse,
    ApiFormDto,
    ApiFormListDto,
    ApiStatusResponse,
    FlowParticipant,
    FlowParticipantsReportResponse,
    FormStatus,
    FormType,
)
from ._poller import poll_report
from ._ratelimit import Clock, RateBudget, Sleep, rate_budget_for
from ._retry import Idempotency, RetryPolicy, nothing_was_sent

__all__ = ["ClientStats", "MomentsClient", "RemovalOutcome", "SendGate"]

logger = logging.getLogger("moments_pipeline.infobip")

_JSON_HEADERS = {"Content-Type": "application/json"}
# errorCode of remove-people-from-flow when the person is not (or no longer) in the flow.
_NOT_IN_FLOW = "40006"
# Exceptions that mean our own request could not be built or routed: retrying cannot help.
_NOT_SENT_TERMINAL = (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.ProxyError)


class SendGate(Protocol):
    """A caller's hooks around each attempt of one non-idempotent send.

    The client knows nothing of what is behind them (the sync engine's ledger marks). It calls
    ``before_issue`` once per attempt, after the attempt's rate slot and right before the
    request is issued; if it raises, nothing is issued, the slot is given back and the
    exception propagates. It calls ``not_processed`` as soon as an attempt's answer proves
    the body was not processed (429, any other 4xx, a connection refused before any byte
    left), before any retry wait or error is raised. Neither is called for an answer that
    may have been processed (a 2xx, a timeout after sending, a 5xx).
    """

    async def before_issue(self) -> None: ...

    async def not_processed(self) -> None: ...


class RemovalOutcome(enum.Enum):
    """Result of remove-people-from-flow."""

    REMOVED = "removed"
    """The service answered 200."""
    ASSUMED_REMOVED = "assumed_removed"
    """An earlier attempt was ambiguous and the retry said "person is not in the flow"."""


@dataclass
class ClientStats:
    """Counters of one client (for metadata and benchmarks; no personal data)."""

    requests: int = 0
    retries: int = 0
    http_429: int = 0
    http_5xx: int = 0
    transport_errors: int = 0
    ambiguous: int = 0
    response_s_total: float = 0.0
    response_s_max: float = 0.0


class MomentsClient:
    """Async client of the Infobip Moments API.

    Args:
        config: Account, key, timeouts and rate.
        transport: An httpx transport (the emulator's in-process transport in tests).
        rate_budget: Budget to pace requests with. Defaults to the process-wide budget of the
            account, or to a private one on the injected clock when ``clock``/``sleep`` are given.
        clock: Monotonic clock for backoff, polling deadlines and pacing (tests inject one).
        sleep: Async sleep matching ``clock``.
        retry_policy: Attempts and backoff; defaults from ``config``.

    Use as ``async with MomentsClient(config) as client: ...``.
    """

    def __init__(
        self,
        config: MomentsClientConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        rate_budget: RateBudget | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self._config = config
        self._secret = config.api_key.get_secret_value()
        self._clock: Clock = clock or time.monotonic
        self._sleep: Sleep = sleep or asyncio.sleep
        if rate_budget is None:
            if clock is None and sleep is None:
                rate_budget = rate_budget_for(config)
            else:
                rate_budget = RateBudget(
                    config.rate_per_s,
                    safety_margin=config.rate_safety_margin,
                    max_safety_margin=config.max_rate_safety_margin,
                    clock=self._clock,
                    sleep=self._sleep,
                )
        self._budget = rate_budget
        self._retry = retry_policy or RetryPolicy(
            max_attempts=config.max_attempts,
            initial_s=config.backoff_initial_s,
            max_s=config.backoff_max_s,
        )
        self._in_flight = asyncio.Semaphore(config.max_in_flight)
        self.stats = ClientStats()
        self._http = httpx.AsyncClient(
            base_url=config.base_url,
            transport=transport,
            headers={
                "Authorization": f"App {self._secret}",
                "Accept": "application/json",
                "User-Agent": "moments-pipeline/0.1",
            },
            timeout=httpx.Timeout(
                connect=config.connect_timeout_s,
                read=config.read_timeout_s,
                write=config.write_timeout_s,
                pool=config.connect_timeout_s,
            ),
            limits=httpx.Limits(
                max_connections=config.max_in_flight,
                max_keepalive_connections=config.max_in_flight,
            ),
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"MomentsClient(base_url={self._config.base_url!r})"

    @property
    def config(self) -> MomentsClientConfig:
        """The client's configuration (its repr hides the key)."""
        return self._config

    @property
    def rate_budget(self) -> RateBudget:
        """The budget pacing this client's requests."""
        return self._budget

    async def __aenter__(self) -> MomentsClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    # --- flows ---------------------------------------------------------------------------------

    async def add_flow_participants(
        self,
        campaign_id: int,
        participants: Sequence[Mapping[str, Any] | FlowParticipant],
        *,
        notify_url: str | None = None,
        callback_data: str | None = None,
        gate: SendGate | None = None,
    ) -> AddFlowParticipantsResponse:
        """Queue 1..1000 participants into a flow (operationId add-flow-participants).

        Args:
            campaign_id: The flow.
            participants: Plain dicts in the spec's FlowParticipant shape (fast path) or
                :class:`FlowParticipant` models.
            notify_url: Where Infobip POSTs the report when processing is done.
            callback_data: Echoed in that report (e.g. the batch id).
            gate: Hooks around each attempt (:class:`SendGate`): acquire slot, then
                ``gate.before_issue()``, then issue.

        Returns:
            The operation id, for :meth:`get_flow_participants_added_report`.

        Raises:
            AmbiguousSendError: Timeout, dropped connection or 5xx after the body was sent;
                the client did NOT re-send it.
            ValidationError, NotFoundError, AuthError: Refused (terminal).
            RateLimitedError, TransportError: Still refused / unreachable after all attempts
                (nothing was queued).
        """
        response = await self._call(
            "add-flow-participants",
            "POST",
            f"/moments/1/flows/{int(campaign_id)}/participants",
            Idempotency.UNSAFE,
            # Encoded lazily, once the call holds an in-flight permit: with hundreds of calls
            # gathered at once, encoding them all up front would hold the event loop between a
            # request's rate slot and its first byte, bunching arrivals at the server.
            content=lambda: encode_add_participants(participants, notify_url, callback_data),
            headers=_JSON_HEADERS,
            context={"campaign_id": int(campaign_id), "callback_data": callback_data},
            gate=gate,
        )
        try:
            return AddFlowParticipantsResponse.model_validate_json(response.content)
        except pydantic.ValidationError:
            # A 2xx whose body carries no operationId: the operation may well be queued, yet
            # nothing names it. That is the ambiguous case, not a refusal.
            cause = MomentsError(
                f"add-flow-participants: unreadable {response.status_code} answer (no operationId)",
                status_code=response.status_code,
                operation="add-flow-participants",
            )
            raise self._ambiguous(
                "add-flow-participants",
                cause,
                {"campaign_id": int(campaign_id), "callback_data": callback_data},
            ) from None

    async def get_flow_participants_added_report(
        self, campaign_id: int, operation_id: str
    ) -> FlowParticipantsReportResponse:
        """Fetch the report of an add operation (get-flow-participants-added-report)."""
        response = await self._call(
            "get-flow-participants-added-report",
            "GET",
            f"/moments/1/flows/{int(campaign_id)}/participants/report",
            Idempotency.SAFE,
            params={"operationId": operation_id},
        )
        return FlowParticipantsReportResponse.model_validate_json(response.content)

    async def remove_people_from_flow(
        self,
        campaign_id: int,
        *,
        phone: str | None = None,
        email: str | None = None,
        external_id: str | None = None,
    ) -> RemovalOutcome:
        """Remove a person from a flow (remove-people-from-flow); retried, it is idempotent.

        Raises:
            ValueError: If no identifier is given.
            ValidationError: errorCode 40006 on a first, unambiguous attempt (not in the flow).
        """
        params = {
            key: value
            for key, value in (("phone", phone), ("email", email), ("externalId", external_id))
            if value is not None
        }
        if not params:
            raise ValueError("remove_people_from_flow needs phone, email or external_id")
        response = await self._call(
            "remove-people-from-flow",
            "DELETE",
            f"/communication/1/flows/{int(campaign_id)}/participants",
            Idempotency.IDEMPOTENT,
            params=params,
            context={"campaign_id": int(campaign_id)},
        )
        return RemovalOutcome.REMOVED if response.is_success else RemovalOutcome.ASSUMED_REMOVED

    async def wait_for_report(
        self,
        campaign_id: int,
        operation_id: str,
        *,
        deadline_s: float,
        initial_interval_s: float = 1.0,
        max_interval_s: float = 30.0,
    ) -> FlowParticipantsReportResponse:
        """Poll the report until no participant is PENDING (see :func:`poll_report`)."""
        return await poll_report(
            lambda: self.get_flow_participants_added_report(campaign_id, operation_id),
            deadline_s=deadline_s,
            initial_interval_s=initial_interval_s,
            max_interval_s=max_interval_s,
            clock=self._clock,
            sleep=self._sleep,
        )

    # --- forms ---------------------------------------------------------------------------------

    async def get_forms(
        self,
        *,
        offset: int | None = None,
        limit: int | None = None,
        form_type: FormType | str | None = None,
        form_status: FormStatus | str | None = None,
    ) -> ApiFormListDto:
        """List forms (get-forms); ``limit`` is at most 100."""
        if limit is not None and not 1 <= limit <= 100:
            raise ValueError("limit must be between 1 and 100")
        params: dict[str, Any] = {}
        if offset is not None:
            params["offset"] = offset
        if limit is not None:
            params["limit"] = limit
        if form_type is not None:
            params["formType"] = getattr(form_type, "value", form_type)
        if form_status is not None:
            params["formStatus"] = getattr(form_status, "value", form_status)
        response = await self._call(
            "get-forms", "GET", "/forms/1/forms", Idempotency.SAFE, params=params
        )
        return ApiFormListDto.model_validate_json(response.content)

    async def get_form(self, form_id: str) -> ApiFormDto:
        """Fetch one form (get-form)."""
        response = await self._call(
            "get-form", "GET", f"/forms/1/forms/{_path_segment(form_id)}", Idempotency.SAFE
        )
        return ApiFormDto.model_validate_json(response.content)

    async def increment_view_count(
        self, form_id: str, *, gate: SendGate | None = None
    ) -> ApiStatusResponse:
        """Count one view of a form (increment-view-count); never re-sent when ambiguous.

        ``gate``: the caller's durable marks around each attempt (see :class:`SendGate`).
        """
        response = await self._call(
            "increment-view-count",
            "POST",
            f"/forms/1/forms/{_path_segment(form_id)}/views",
            Idempotency.UNSAFE,
            context={"form_id": form_id},
            gate=gate,
        )
        return ApiStatusResponse.model_validate_json(response.content)

    async def submit_form_data(
        self,
        form_id: str,
        data: Mapping[str, Any],
        *,
        source: str | None = None,
        form_campaign: str | None = None,
        encoding: Literal["json", "urlencoded", "multipart"] = "json",
        gate: SendGate | None = None,
    ) -> ApiStatusResponse:
        """Submit one form (submit-form-data); never re-sent when ambiguous.

        Args:
            form_id: The form.
            data: Field id -> plain value.
            source: ``ib-submission-source`` header.
            form_campaign: ``ib-submission-form-campaign`` header.
            encoding: Body encoding: JSON, urlencoded or multipart.
            gate: The caller's durable marks around each attempt (see :class:`SendGate`):
                the exactly-once record of a submission.
        """
        body, content_type = encode_form_data(data, encoding)
        headers = {"Content-Type": content_type}
        if source is not None:
            headers["ib-submission-source"] = source
        if form_campaign is not None:
            headers["ib-submission-form-campaign"] = form_campaign
        response = await self._call(
            "submit-form-data",
            "POST",
            f"/forms/1/forms/{_path_segment(form_id)}/data",
            Idempotency.UNSAFE,
            content=body,
            headers=headers,
            context={"form_id": form_id},
            gate=gate,
        )
        return ApiStatusResponse.model_validate_json(response.content)

    # --- the one place that talks to the network -----------------------------------------------

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        idempotency: Idempotency,
        *,
        params: Mapping[str, Any] | None = None,
        content: bytes | Callable[[], bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        context: Mapping[str, Any] | None = None,
        gate: SendGate | None = None,
    ) -> httpx.Response:
        """Send one operation, retrying only what is safe to retry (see ``_retry``).

        Returns the 2xx response, or for DELETE the 400/40006 answer after an ambiguous try.
        With a ``gate``, each attempt is: rate slot, ``gate.before_issue()``, issue (see
        :class:`SendGate`).
        """
        context = context or {}
        earlier_attempt_ambiguous = False
        last_error: MomentsError | None = None
        for attempt in range(1, self._retry.max_attempts + 1):
            if attempt > 1:
                self.stats.retries += 1
            async with self._in_flight:
                if callable(content):
                    content = content()
                # Acquire the slot after the in-flight permit, so the request starts on its slot;
                # the window counts the issue itself, after the gate's durable mark.
                await self._budget.reserve()
                try:
                    if gate is not None:
                        await gate.before_issue()
                except BaseException:
                    self._budget.cancel_reservation()
                    raise
                # The reservation becomes an issue when the body is written (see _issue).
                mark = IssueMark(self._budget)
                self.stats.requests += 1
                started = self._clock()
                maybe_sent = True
                try:
                    response = await self._http.request(
                        method,
                        path,
                        params=params,
                        content=content,
                        headers=headers,
                        extensions=mark.extensions,
                    )
                except httpx.TransportError as exc:
                    failure: httpx.TransportError | None = exc
                    maybe_sent = not nothing_was_sent(exc)
                else:
                    failure = None
                finally:
                    mark.settle(maybe_sent=maybe_sent)
            if failure is not None:
                self.stats.transport_errors += 1
                transport_error = self._transport_error(operation, failure)
                logger.warning(
                    "%s attempt %d failed: %s", operation, attempt, transport_error.message
                )
                if isinstance(failure, _NOT_SENT_TERMINAL):
                    if gate is not None:
                        await gate.not_processed()
                    raise transport_error from failure
                if not nothing_was_sent(failure):
                    if idempotency is Idempotency.UNSAFE:
                        raise self._ambiguous(operation, transport_error, context) from failure
                    earlier_attempt_ambiguous = True
                elif gate is not None:
                    await gate.not_processed()
                last_error = transport_error
                await self._backoff(attempt, None)
                continue
            elapsed_s = self._clock() - started
            self.stats.response_s_total += elapsed_s
            self.stats.response_s_max = max(self.stats.response_s_max, elapsed_s)
            elapsed_ms = elapsed_s * 1000
            logger.debug(
                "%s attempt %d -> HTTP %d in %.0f ms",
                operation,
                attempt,
                response.status_code,
                elapsed_ms,
            )
            if response.status_code != 429:
                self._budget.note_accepted()
            if response.is_success:
                return response
            error = error_from_response(
                operation=operation,
                status_code=response.status_code,
                body=response.content,
                retry_after=response.headers.get("Retry-After"),
                secret=self._secret,
            )
            if gate is not None and response.status_code < 500:
                await gate.not_processed()  # a 4xx is a refusal before processing
            if isinstance(error, RateLimitedError):
                # Refused, nothing queued: safe to resend once the whole account has paused.
                self.stats.http_429 += 1
                pause = error.retry_after_s
                if pause is None:
                    pause = self._retry.delay(attempt)
                self._budget.pause(pause)
                self._budget.note_rate_limited()
                logger.warning("%s rate limited; account paused %.2f s", operation, pause)
                last_error = error
                continue
            if response.status_code >= 500:
                self.stats.http_5xx += 1
                logger.warning("%s attempt %d failed: %s", operation, attempt, error.message)
                if idempotency is Idempotency.UNSAFE:
                    raise self._ambiguous(operation, error, context)
                if idempotency is Idempotency.IDEMPOTENT:
                    earlier_attempt_ambiguous = True
                last_error = error
                await self._backoff(attempt, None)
                continue
            if (
                idempotency is Idempotency.IDEMPOTENT
                and earlier_attempt_ambiguous
                and error.error_code == _NOT_IN_FLOW
            ):
                # The ambiguous earlier DELETE evidently went through.
                return response
            raise error
        assert last_error is not None  # the loop ran at least once and did not return
        raise last_error

    async def _backoff(self, attempt: int, retry_after_s: float | None) -> None:
        if attempt < self._retry.max_attempts:
            await self._sleep(self._retry.delay(attempt, retry_after_s))

    def _transport_error(self, operation: str, exc: httpx.TransportError) -> TransportError:
        detail = str(exc).replace(self._secret, "[redacted]") or "no detail"
        transient = not isinstance(exc, _NOT_SENT_TERMINAL)
        return TransportError(
            f"{operation}: {type(exc).__name__}: {detail}",
            operation=operation,
            error_text=detail,
            transient=transient,
        )

    def _ambiguous(
        self, operation: str, cause: MomentsError, context: Mapping[str, Any]
    ) -> AmbiguousSendError:
        self.stats.ambiguous += 1
        where = ", ".join(
            f"{key}={value!r}"
            for key, value in context.items()
            if value is not None and key != "callback_data"
        )
        return AmbiguousSendError(
            f"{operation} ({where}) may or may not have been processed: {cause.message}; "
            "not re-sent (Infobip has no idempotency key), reconcile before retrying",
            cause=cause,
            operation=operation,
            campaign_id=context.get("campaign_id"),
            form_id=context.get("form_id"),
            callback_data=context.get("callback_data"),
        )


def _path_segment(value: str) -> str:
    """Percent-encode an id for use as one path segment."""
    if not value:
        raise ValueError("id must not be empty")
    return quote(value, safe="")
