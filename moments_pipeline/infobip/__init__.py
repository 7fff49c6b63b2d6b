"""The Infobip Moments API client: async, rate-limited, never re-sends an ambiguous request.

No Dagster import here (a test enforces it), and never the emulator.

Main pieces:

- :class:`MomentsClientConfig` (``from_env()`` reads ``INFOBIP_BASE_URL``/``INFOBIP_API_KEY``).
- :class:`MomentsClient` (async; the seven live operations, ``wait_for_report``) and
  :class:`MomentsSyncClient` (blocking facade).
- :class:`RateBudget`: one per account in the process, shared by every client; paces request
  starts at ``1 / rate_per_s``, pauses the whole account on a 429 and widens its spacing
  after 429s (relaxing slowly after a clean run). With ``MomentsClientConfig.pacing_dir`` it
  shares its pacing with the account's other processes on the host (:class:`FilePacingRecord`,
  ``default_pacing_dir()``).
- :class:`CallbackReceiver` / :class:`CallbackServer`: ``notifyUrl`` reports by ``callbackData``,
  typed or as :class:`RawReport` (checked JSON bytes, the cheap path for handlers that store);
  a per-receiver secret path token, bodies capped (``DEFAULT_MAX_BODY_BYTES``, 413 beyond),
  every fate counted in :class:`CallbackStats` (a raw handler returns a :class:`CallbackOutcome`).

Error tree (``transient`` = the same call may succeed later)::

    MomentsError                  root; .transient .status_code .message_id .error_code .error_text
    ├── AuthError                 401/403                        terminal
    ├── ValidationError           400 (e.g. errorCode 40006)     terminal
    ├── NotFoundError             404                            terminal
    ├── RateLimitedError          429, .retry_after_s            transient
    ├── ServerError               5xx                            transient
    ├── TransportError            connect error, timeout, drop   transient
    ├── AmbiguousSendError        body may have been processed   NOT transient: reconcile first
    └── ReportDeadlineExceeded    report still PENDING           transient, .last_report

Retry rules (Infobip has no idempotency key):

- Retried automatically, bounded attempts, exponential backoff with full jitter, for every
  operation: a connect error / connect timeout (nothing was sent) and a 429 (refused; the whole
  account pauses for ``Retry-After``).
- GET (report, forms): also retried on 5xx, read timeout and dropped connection.
- DELETE (remove-people-from-flow): also retried on those; after such an ambiguous attempt a
  400 with errorCode 40006 ("person is not in the flow") counts as done
  (:attr:`RemovalOutcome.ASSUMED_REMOVED`).
- POST add-flow-participants, submit-form-data, increment-view-count: a read timeout, a dropped
  connection (after the body may have left) or a 5xx raises :class:`AmbiguousSendError` and is
  NEVER re-sent by the client.
"""

from ._access import KEY_CHECK_OPERATION_ID, KeyCheck, check_api_key
from ._callback_guard import DEFAULT_MAX_BODY_BYTES, CallbackOutcome, CallbackStats
from ._callback_server import CallbackServer
from ._client import ClientStats, MomentsClient, RemovalOutcome, SendGate
from ._config import MomentsClientConfig, default_pacing_dir
from ._errors import (
    AmbiguousSendError,
    AuthError,
    MomentsError,
    NotFoundError,
    RateLimitedError,
    ReportDeadlineExceeded,
    ServerError,
    TransportError,
    ValidationError,
    error_summary,
    is_flow_unavailable,
)
from ._models import (
    ActionAfterSubmission,
    AddFlowParticipantResult,
    AddFlowParticipantsRequest,
    AddFlowParticipantsResponse,
    AddFlowParticipantStatus,
    ApiFormDto,
    ApiFormListDto,
    ApiStatusResponse,
    ComponentType,
    ErrorStatusReason,
    ExceptionResponse,
    FlowParticipant,
    FlowParticipantsReportResponse,
    FormElementDto,
    FormElementOptionDto,
    FormStatus,
    FormType,
    IamEmailContact,
    IamPersonContactsV2,
    IamPersonV2,
    IamPhoneContact,
    ValidationRules,
    WebhookPersonUniqueField,
    WebhookPersonUniqueFieldType,
)
from ._pacing_record import FilePacingRecord, PacingRecord, PacingRecordError, PacingState
from ._poller import poll_report
from ._ratelimit import RateBudget, rate_budget_for
from ._raw_report import RawReport
from ._receiver import CallbackReceiver, RawReportHandler, ReportHandler
from ._retry import RetryPolicy
from ._sync import MomentsSyncClient

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "KEY_CHECK_OPERATION_ID",
    "ActionAfterSubmission",
    "AddFlowParticipantResult",
    "AddFlowParticipantStatus",
    "AddFlowParticipantsRequest",
    "AddFlowParticipantsResponse",
    "AmbiguousSendError",
    "ApiFormDto",
    "ApiFormListDto",
    "ApiStatusResponse",
    "AuthError",
    "CallbackOutcome",
    "CallbackReceiver",
    "CallbackServer",
    "CallbackStats",
    "ClientStats",
    "ComponentType",
    "ErrorStatusReason",
    "ExceptionResponse",
    "FilePacingRecord",
    "FlowParticipant",
    "FlowParticipantsReportResponse",
    "FormElementDto",
    "FormElementOptionDto",
    "FormStatus",
    "FormType",
    "IamEmailContact",
    "IamPersonContactsV2",
    "IamPersonV2",
    "IamPhoneContact",
    "KeyCheck",
    "MomentsClient",
    "MomentsClientConfig",
    "MomentsError",
    "MomentsSyncClient",
    "NotFoundError",
    "PacingRecord",
    "PacingRecordError",
    "PacingState",
    "RateBudget",
    "RateLimitedError",
    "RawReport",
    "RawReportHandler",
    "RemovalOutcome",
    "ReportDeadlineExceeded",
    "ReportHandler",
    "RetryPolicy",
    "SendGate",
    "ServerError",
    "TransportError",
    "ValidationError",
    "ValidationRules",
    "WebhookPersonUniqueField",
    "WebhookPersonUniqueFieldType",
    "check_api_key",
    "default_pacing_dir",
    "error_summary",
    "is_flow_unavailable",
    "poll_report",
    "rate_budget_for",
]
