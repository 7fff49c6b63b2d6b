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
from ._form_catalog import catalog_changes, catalog_frames, read_form_catalog
from ._form_run import (
    FormRun,
    FormSourceInvalidError,
    fetch_form,
    form_source_problems,
    read_form_source,
    run_form_source,
)
from ._forms import (
    ALREADY_SUBMITTED,
    FormRowOutcome,
    FormSend,
    FormsEngine,
    FormSyncResult,
    FormUnavailableError,
    form_scope,
    form_send_key,
)
from ._forms_destination import FormsDestination, MomentsFormsDestination
from ._ledger_sql import SqlLedgerStore
from ._membership import PlanAction, PlanPerson, PlanSummary, RemovalRecord
from ._options import LEDGER_SCOPE, SyncOptions
from ._pacing_sql import PACING_TABLE, SqlPacingRecord
from ._prepared import (
    participants_from_prepared,
    prior_identities_frame,
    quarantine_from_prepared,
)
from ._progress import ProgressCallback, SyncProgress
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
from ._removals import (
    GuardVerdict,
    MembershipPlan,
    MomentsRemover,
    RemovalAnswer,
    RemovalResult,
    RemovalsStoppedError,
    Remover,
    apply_removals,
    evaluate_guard,
    plan_membership,
)
from ._reports import IN_FLOW_REASON
from ._result import HeldBatch, RefusedSample, RejectedSample, SyncResult
from ._resume import SENDING_AT_CRASH
from ._source import read_audience_source, source_day, source_field_paths, source_problems
from ._states import (
    BATCH_TRANSITIONS,
    MAY_HAVE_LEFT,
    NEVER_LEFT,
    REMOVAL_OPEN,
    REMOVAL_TRANSITIONS,
    STATUS_TRANSITIONS,
    IllegalTransition,
    ParticipantStatus,
    RemovalState,
    check_removal_transition,
    check_status_transition,
    check_transition,
)

__all__ = [
    "ALREADY_SUBMITTED",
    "BATCH_TRANSITIONS",
    "CLAIMED_BY_ANOTHER_RUN",
    "IN_FLOW_REASON",
    "LEDGER_SCOPE",
    "MAX_BATCH_SIZE",
    "MAY_HAVE_LEFT",
    "NEVER_LEFT",
    "NOT_ENOUGH_CREDITS",
    "PACING_TABLE",
    "REMOVAL_OPEN",
    "REMOVAL_TRANSITIONS",
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
    "FormRowOutcome",
    "FormRun",
    "FormSend",
    "FormSourceInvalidError",
    "FormSyncResult",
    "FormUnavailableError",
    "FormsDestination",
    "FormsEngine",
    "GuardVerdict",
    "HeldBatch",
    "IllegalTransition",
    "Lease",
    "LeaseHeldError",
    "LeaseLostError",
    "LedgerStore",
    "MembershipPlan",
    "MomentsFlowDestination",
    "MomentsFormsDestination",
    "MomentsRemover",
    "MonotonicClock",
    "OperationReport",
    "ParticipantStatus",
    "ParticipantVerdict",
    "PlanAction",
    "PlanPerson",
    "PlanSummary",
    "PlannedBatch",
    "ProgressCallback",
    "QuarantineRow",
    "RefusedSample",
    "RejectedSample",
    "RemovalAnswer",
    "RemovalRecord",
    "RemovalResult",
    "RemovalState",
    "RemovalsStoppedError",
    "Remover",
    "SendKind",
    "SendOutcome",
    "SqlLedgerStore",
    "SqlPacingRecord",
    "StatusRow",
    "SyncAuthError",
    "SyncEngine",
    "SyncOptions",
    "SyncParticipant",
    "SyncProgress",
    "SyncResult",
    "SyncStoppedError",
    "apply_removals",
    "catalog_changes",
    "catalog_frames",
    "check_removal_transition",
    "check_status_transition",
    "check_transition",
    "check_unique_identifiers",
    "evaluate_guard",
    "fetch_form",
    "form_scope",
    "form_send_key",
    "form_source_problems",
    "identifiers_of",
    "identify_by_kind",
    "ledger_callback_handler",
    "participants_from_prepared",
    "plan_batches",
    "plan_membership",
    "prior_identities_frame",
    "quarantine_from_prepared",
    "read_audience_source",
    "read_form_catalog",
    "read_form_source",
    "report_from_model",
    "run_form_source",
    "source_day",
    "source_field_paths",
    "source_problems",
]
