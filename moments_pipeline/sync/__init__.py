"""The sync engine: batching, the outbox ledger and exactly-once delivery to a flow.

Plain Python that returns a result: it imports no Dagster and does no logging (a test enforces
both), so it can be driven and tested without an orchestrator.

Typical use::

    ledger = SqlLedgerStore(warehouse)
    receiver = CallbackReceiver(raw_handler=ledger_callback_handler(ledger))
    with CallbackServer(receiver) as server:
        async with MomentsClient(config) as client:
            destination = MomentsFlowDestination(client, notify_url=server.notify_url)
            result = await SyncEngine(destination, ledger).run(
                audience="vip", partition_key="2026-11-25", campaign_id=200000000000001,
                participants=participants_from_prepared(prepared, spec),
            )
"""

from ._batching import (
    MAX_BATCH_SIZE,
    DuplicateIdentifierError,
    PlannedBatch,
    SyncParticipant,
    check_unique_identifiers,
    identifiers_of,
    identify_by_kind,
    plan_batches,
)
from ._clock import Clock, MonotonicClock
from ._columns import BatchMembers
from ._destination import MomentsFlowDestination, ledger_callback_handler, report_from_model
from ._engine import CLAIMED_BY_ANOTHER_RUN, RUN_STOPPED, SyncEngine
from ._errors import (
    NOT_ENOUGH_CREDITS,
    AccountRefusedError,
    CreditsExhaustedError,
    DestinationStoppedError,
    FlowUnavailableError,
    LeaseHeldError,
    LeaseLostError,
    SyncAuthError,
    SyncStoppedError,
)
from ._ledger_sql import SqlLedgerStore
from ._options import LEDGER_SCOPE, SyncOptions
from ._prepared import (
    participants_from_prepared,
    prior_identities_frame,
    quarantine_from_prepared,
)
from ._protocols import (
    BatchMember,
    BatchRecord,
    BatchState,
    CallbackVerdict,
    FlowDestination,
    Lease,
    LedgerStore,
    OperationReport,
    ParticipantVerdict,
    QuarantineRow,
    SendKind,
    SendOutcome,
    StatusRow,
)
from ._reports import IN_FLOW_REASON
from ._result import HeldBatch, RefusedSample, RejectedSample, SyncResult
from ._resume import SENDING_AT_CRASH
from ._source import read_audience_source, source_field_paths, source_problems
from ._states import (
    BATCH_TRANSITIONS,
    MAY_HAVE_LEFT,
    NEVER_LEFT,
    STATUS_TRANSITIONS,
    IllegalTransition,
    ParticipantStatus,
    check_status_transition,
    check_transition,
)

__all__ = [
    "BATCH_TRANSITIONS",
    "CLAIMED_BY_ANOTHER_RUN",
    "IN_FLOW_REASON",
    "LEDGER_SCOPE",
    "MAX_BATCH_SIZE",
    "MAY_HAVE_LEFT",
    "NEVER_LEFT",
    "NOT_ENOUGH_CREDITS",
    "RUN_STOPPED",
    "SENDING_AT_CRASH",
    "STATUS_TRANSITIONS",
    "AccountRefusedError",
    "BatchMember",
    "BatchMembers",
    "BatchRecord",
    "BatchState",
    "CallbackVerdict",
    "Clock",
    "CreditsExhaustedError",
    "DestinationStoppedError",
    "DuplicateIdentifierError",
    "FlowDestination",
    "FlowUnavailableError",
    "HeldBatch",
    "IllegalTransition",
    "Lease",
    "LeaseHeldError",
    "LeaseLostError",
    "LedgerStore",
    "MomentsFlowDestination",
    "MonotonicClock",
    "OperationReport",
    "ParticipantStatus",
    "ParticipantVerdict",
    "PlannedBatch",
    "QuarantineRow",
    "RefusedSample",
    "RejectedSample",
    "SendKind",
    "SendOutcome",
    "SqlLedgerStore",
    "StatusRow",
    "SyncAuthError",
    "SyncEngine",
    "SyncOptions",
    "SyncParticipant",
    "SyncResult",
    "SyncStoppedError",
    "check_status_transition",
    "check_transition",
    "check_unique_identifiers",
    "identifiers_of",
    "identify_by_kind",
    "ledger_callback_handler",
    "participants_from_prepared",
    "plan_batches",
    "prior_identities_frame",
    "quarantine_from_prepared",
    "read_audience_source",
    "report_from_model",
    "source_field_paths",
    "source_problems",
]
