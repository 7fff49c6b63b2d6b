"""The ``Emulator``: all state of one emulated Infobip account, and its clock.

Handlers reach it through ``request.app.state.emulator``. It owns the People store, the flows
and their memberships, the add-participants operations, the forms state (filled by the forms
routes), the request log, recorded exchanges, fault control and the rate limiter.

Processing of operations is asynchronous: an operation becomes due ``processing_delay_s``
(+ the fault ``report_delay_s``) after acceptance and is processed, in acceptance order, by a
background task in slices, so requests are answered between slices. On the wall clock a
report (or a remove, or an inspection read) never processes anything itself: it says what the
background worker has done so far (PENDING until then), as the real service would, and a
large backlog never freezes the server inside one request. Only on a ``ManualClock`` (tests)
are due operations processed synchronously when a report, a remove or the inspection API is
read, or the clock is advanced (``catch_up``), so tests need no sleeps. With a state file every
mutation is journaled (``persistence``) and replayed at start; operations still pending then
complete afterwards. Flows can be added while running (``put_flow``, ``POST /_emulator/flows``);
they are journaled too, and a reset returns to the configured flows.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import gc
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from .callbacks import CallbackSender
from .clock import Clock, ManualClock, SystemClock
from .faults import FaultController
from .flows import AddRequest, FlowState, Operation, ParticipantRun
from .forms_seed import complete_form, default_forms
from .people import Identifier, PeopleStore
from .persistence import Journal, read_journal
from .ratelimit import RateLimiter
from .settings import EmulatorSettings, FlowConfig

__all__ = ["Emulator", "Exchange", "RemoveOutcome"]

_DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Exchange:
    """One recorded HTTP exchange (the Authorization header is never kept).

    Attributes:
        method: HTTP method.
        path: Request path.
        query_string: Raw query string (decoded as latin-1).
        request_headers: Request headers, lower-cased names, without Authorization.
        request_body: Request body bytes.
        status: Response status.
        response_headers: Response headers, lower-cased names.
        response_body: Response body bytes.
        operation: Spec operationId of the request (None for paths outside the spec).
        fault: The injected fault that produced the answer (500/502/503/429), if any; such
            answers are the emulator's doing, not the API's behaviour.
    """

    method: str
    path: str
    query_string: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int
    response_headers: dict[str, str]
    response_body: bytes
    operation: str | None
    fault: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready view (bodies base64-encoded), for ``GET /_emulator/exchanges``."""
        return {
            "method": self.method,
            "path": self.path,
            "queryString": self.query_string,
            "requestHeaders": self.request_headers,
            "requestBody": base64.b64encode(self.request_body).decode("ascii"),
            "status": self.status,
            "responseHeaders": self.response_headers,
            "responseBody": base64.b64encode(self.response_body).decode("ascii"),
            "operation": self.operation,
            "fault": self.fault,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Exchange:
        """Inverse of ``to_dict``."""
        return cls(
            method=data["method"],
            path=data["path"],
            query_string=data["queryString"],
            request_headers=dict(data["requestHeaders"]),
            request_body=base64.b64decode(data["requestBody"]),
            status=int(data["status"]),
            response_headers=dict(data["responseHeaders"]),
            response_body=base64.b64decode(data["responseBody"]),
            operation=data["operation"],
            fault=data["fault"],
        )


@dataclass(frozen=True, slots=True)
class RemoveOutcome:
    """Result of remove-people-from-flow: status, and errorCode/errorMessage when refused."""

    status: int
    error_code: str | None = None
    message: str | None = None


class Emulator:
    """State and behaviour of one emulated account.

    Args:
        settings: The emulator settings.
        clock: Time source (default: the wall clock).
        callback_transport: httpx transport for ``notifyUrl`` POSTs (default: network).
    """

    def __init__(
        self,
        settings: EmulatorSettings,
        clock: Clock | None = None,
        *,
        callback_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self._forced_processing = isinstance(self.clock, ManualClock)
        self.people = PeopleStore(self.clock.now)
        self.people.add_merge_listener(self._move_memberships)
        self.flows: dict[int, FlowState] = {}
        # Flows added or changed through ``/_emulator/flows`` (journaled; a reset forgets them).
        self.admin_flows: dict[int, FlowConfig] = {}
        self.operations: dict[str, Operation] = {}
        self._pending: deque[Operation] = deque()
        self.credits_left: int | None = settings.credits
        self.custom_attributes = frozenset(settings.custom_attributes)
        self.forms: dict[str, dict[str, Any]] = {}
        self.form_submissions: list[dict[str, Any]] = []
        self.form_views: dict[str, int] = {}
        self.exchanges: list[Exchange] = []
        self.request_log: deque[dict[str, Any]] = deque(maxlen=settings.request_log_size)
        self.faults = FaultController(settings.faults)
        self.rate_limiter = (
            RateLimiter(settings.rate_limit_per_s, settings.rate_limit_jitter_ms)
            if settings.rate_limit_per_s is not None
            else None
        )
        self.callbacks = CallbackSender(
            settings.callback_retries,
            settings.callback_backoff_s,
            settings.callback_timeout_s,
            callback_transport,
        )
        self._callback_tasks: set[asyncio.Task[bool]] = set()
        self._unscheduled: list[Operation] = []
        self._worker: asyncio.Task[None] | None = None
        self._run: ParticipantRun | None = None
        self._forms_saved = 0
        # Set by the CLI, which owns its process: see ``_work``.
        self.freeze_gc = False
        seeded_at = datetime.fromtimestamp(self.clock.now(), UTC)
        # Configured forms are served complete (every required ApiFormDto field), stamped once.
        self._configured_forms = [complete_form(f, now=seeded_at) for f in settings.forms]
        self._seed()
        self.journal: Journal | None = None
        if settings.state_path is not None:
            self._replay()
            self.journal = Journal(settings.state_path)
            # Only a journaled emulator pays for building upsert records.
            self.people.journal = self._journal_upsert

    # -- seed & reset ------------------------------------------------------------------------

    def _seed(self) -> None:
        self.flows = {cid: FlowState(cfg) for cid, cfg in self.settings.all_flows().items()}
        self.admin_flows = {}
        forms: list[dict[str, Any]] = []
        if self.settings.seed_spec_examples:
            forms.extend(default_forms())
        forms.extend(copy.deepcopy(self._configured_forms))
        self.forms = {str(f["id"]): f for f in forms}
        self.form_views = dict.fromkeys(self.forms, 0)

    def reset(self) -> None:
        """Return to the seeded state (profiles, memberships, operations, forms, logs)."""
        self.people.clear()
        self.operations.clear()
        self._pending.clear()
        self._run = None
        self.form_submissions.clear()
        self.exchanges.clear()
        self.request_log.clear()
        self.credits_left = self.settings.credits
        self.faults.configure(self.settings.faults)
        if self.rate_limiter is not None:
            self.rate_limiter.reset()
        self._seed()
        self._forms_saved = 0
        if self.journal is not None:
            self.journal.write({"t": "reset"})

    # -- flows added while running ---------------------------------------------------------

    def put_flow(self, config: FlowConfig) -> bool:
        """Add a flow, or change an existing one's settings (its members stay); journaled.

        Returns:
            True when the flow is new.
        """
        created = self._apply_flow(config)
        if self.journal is not None:
            self.journal.write({"t": "flow", "flow": config.model_dump()})
        return created

    def _apply_flow(self, config: FlowConfig) -> bool:
        self.admin_flows[config.campaign_id] = config
        flow = self.flows.get(config.campaign_id)
        if flow is None:
            self.flows[config.campaign_id] = FlowState(config)
            return True
        flow.config = config
        return False

    # -- time --------------------------------------------------------------------------------

    def now(self) -> float:
        """Return the emulator's current time (Unix seconds)."""
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        """Advance a manual clock, then process what became due.

        Raises:
            TypeError: The clock is not a ``ManualClock``.
        """
        if not isinstance(self.clock, ManualClock):
            raise TypeError("the emulator's clock is not a ManualClock")
        self.clock.advance(seconds)
        self.process_due()

    # -- add participants ----------------------------------------------------------------------

    def active_flow(self, campaign_id: int) -> FlowState | None:
        """Return the flow if it exists and is active."""
        flow = self.flows.get(campaign_id)
        return flow if flow is not None and flow.config.active else None

    def accept(self, campaign_id: int, request: AddRequest, body: bytes) -> Operation:
        """Queue a validated add request and return its operation (journaled first)."""
        now = self.now()
        delay = self.settings.processing_delay_s + self.faults.settings.report_delay_s
        op = Operation(
            str(uuid.uuid4()),
            campaign_id,
            request.participants,
            request.notify_url,
            request.callback_data,
            now,
            now + delay,
            identify_by=[p["identifyBy"] for p in request.participants],
        )
        if self.journal is not None:
            # The validated body is journaled as sent (no re-serialization); what processing
            # does with it is recomputed on replay.
            self.journal.write_add(op.operation_id, campaign_id, body, now, op.due_at)
        self._register(op)
        if self.freeze_gc:
            # The accepted participants wait in the backlog: left young, every full collection
            # would rescan all of them (at 100 requests/s that quadratic rescan, not the
            # parsing, was most of the accept path's cost). See ``_finish``.
            gc.freeze()
        return op

    def _register(self, op: Operation) -> None:
        self.operations[op.operation_id] = op
        if op.verdicts is None:
            self._pending.append(op)

    def catch_up(self) -> None:
        """On a ``ManualClock``, process everything due now; on the wall clock do nothing.

        Reads (report, remove, inspection) call it: a test on a manual clock sees what became
        due at once, while a served emulator on the wall clock leaves the work to the
        background worker and answers at once.
        """
        if self._forced_processing:
            self.process_due()

    def process_due(self, max_operations: int | None = None) -> int:
        """Process due operations in acceptance order; return how many were completed.

        An operation that the background worker left half processed is completed first.
        """
        now = self.now()
        done = 0
        pending = self._pending
        while pending and pending[0].due_at <= now:
            if max_operations is not None and done >= max_operations:
                break
            while not self._process_slice(None, now):
                pass
            done += 1
        return done

    def process_next_slice(self, limit: int | None = None) -> bool | None:
        """Process the next slice of the oldest due operation (what the worker does per turn).

        Args:
            limit: Most participants to process (None: the rest of the operation).

        Returns:
            None when no operation is due, else whether the slice completed its operation.
        """
        now = self.now()
        if not self._pending or self._pending[0].due_at > now:
            return None
        return self._process_slice(limit, now)

    def _process_slice(self, limit: int | None, now: float) -> bool:
        """Process the next slice of the head pending operation; True when it completed it."""
        run = self._run
        if run is None:
            op = self._pending[0]
            run = self._run = ParticipantRun(
                op,
                self.flows.get(op.campaign_id),
                self.people,
                custom_attributes=self.custom_attributes,
            )
        op = run.operation
        people = self.people
        upsert_journal, people.journal = people.journal, None  # recomputed on replay
        try:
            used = run.step(
                len(op.participants) if limit is None else limit,
                credits_left=self.credits_left,
                now=now,
            )
        finally:
            people.journal = upsert_journal
        if self.credits_left is not None:
            self.credits_left -= used
        if self.journal is not None:
            self.journal.write(
                {"t": "slice", "op": op.operation_id, "end": run.position, "at": now}
            )
        if not run.done:
            return False
        self._finish(run)
        if op.notify_url:
            self._schedule_callback(op)
        return True

    def _finish(self, run: ParticipantRun) -> None:
        op = run.operation
        if len(op.identify_by) != len(op.participants):
            op.identify_by = [p["identifyBy"] for p in op.participants]
        op.verdicts = run.verdicts
        op.participants = []
        self._pending.popleft()
        self._run = None
        if self.freeze_gc:
            # The state only grows (profiles, reports): left to the cyclic GC, every full
            # collection rescans all of it and pauses the loop for up to a second at 10^6
            # profiles. Frozen objects are still freed by reference counting; the state holds
            # no reference cycles. O(1).
            gc.freeze()

    def report(self, campaign_id: int, operation_id: str) -> dict[str, Any] | None:
        """Return the report of an operation, or None if unknown, foreign or expired.

        On the wall clock an operation the background worker has not completed yet is
        reported PENDING (see ``catch_up``).
        """
        self.catch_up()
        op = self.operations.get(operation_id)
        if op is None or op.campaign_id != campaign_id:
            return None
        if self.now() - op.created_at > self.settings.report_retention_days * _DAY_S:
            return None
        return op.report()

    # -- callbacks ---------------------------------------------------------------------------

    def _schedule_callback(self, op: Operation) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._unscheduled.append(op)
            return
        for waiting in self._unscheduled:
            self._start_callback(loop, waiting)
        self._unscheduled.clear()
        self._start_callback(loop, op)

    def _start_callback(self, loop: asyncio.AbstractEventLoop, op: Operation) -> None:
        assert op.notify_url is not None
        task = loop.create_task(self.callbacks.deliver(op.notify_url, op.report()))
        self._callback_tasks.add(task)
        task.add_done_callback(self._callback_tasks.discard)

    async def drain_callbacks(self) -> None:
        """Process what is due and wait until every scheduled callback delivery finished."""
        self.process_due()
        loop = asyncio.get_running_loop()
        for op in self._unscheduled:
            self._start_callback(loop, op)
        self._unscheduled.clear()
        while self._callback_tasks:
            await asyncio.gather(*list(self._callback_tasks), return_exceptions=True)

    # -- background worker ---------------------------------------------------------------------

    def ensure_worker(self) -> None:
        """Start the background processor on the running loop (idempotent per loop)."""
        loop = asyncio.get_running_loop()
        worker = self._worker
        if worker is not None and not worker.done() and worker.get_loop() is loop:
            return
        self._worker = loop.create_task(self._work())

    async def _work(self) -> None:
        while True:
            await asyncio.sleep(0.02)
            # One slice per turn keeps the loop responsive under load: requests are answered
            # between slices, and reports say PENDING until their operation completed.
            slice_size = self.settings.processing_slice
            while (completed := self.process_next_slice(slice_size)) is not None:
                if not completed:
                    await asyncio.sleep(0)
                    continue
                await asyncio.sleep(0)

    async def aclose(self) -> None:
        """Stop the background worker and compact the journal (clean shutdown)."""
        worker, self._worker = self._worker, None
        if worker is not None and not worker.done():
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self.close()

    def close(self) -> None:
        """Compact the journal into a snapshot and close it."""
        if self.journal is not None:
            self._complete_run()
            self.journal.compact(self.snapshot())
            self.journal.close()
            self.journal = None

    # -- remove participant --------------------------------------------------------------------

    def remove(
        self, campaign_id: int, *, phone: str | None, email: str | None, external_id: str | None
    ) -> RemoveOutcome:
        """Apply remove-people-from-flow and return its outcome."""
        given: list[Identifier] = []
        if phone:
            given.append(Identifier.phone(phone))
        if email:
            given.append(Identifier.email(email))
        if external_id:
            given.append(Identifier.external_id(external_id))
        if not given:
            return RemoveOutcome(400, "40001", "Bad request")
        flow = self.flows.get(campaign_id)
        if flow is None:
            return RemoveOutcome(
                404, "40401", f"Could not find active flow for campaign {campaign_id}"
            )
        if not flow.config.active:
            # Reading: the spec's ExceptionResponse table names "Flow inactive" (40005, 400)
            # and this operation documents 400 with that shape, so a configured but inactive
            # flow answers it here (add-flow-participants folds inactive into 40401, as its
            # own example message "Could not find active flow" says).
            return RemoveOutcome(400, "40005", "Flow inactive")
        self.catch_up()
        found = {pid for pid in (self.people.find(i) for i in given) if pid is not None}
        if not found:
            return RemoveOutcome(404, "40402", "Person not found")
        if len(found) > 1:
            return RemoveOutcome(400, "40002", "Duplicate person")
        (profile_id,) = found
        if profile_id not in flow.members:
            return RemoveOutcome(400, "40006", "Person is not in the flow")
        flow.members.discard(profile_id)
        if self.journal is not None:
            self.journal.write({"t": "remove", "campaign": campaign_id, "pid": profile_id})
        return RemoveOutcome(200)

    # -- memberships ---------------------------------------------------------------------------

    def _move_memberships(self, surviving_id: int, absorbed_id: int) -> None:
        for flow in self.flows.values():
            if absorbed_id in flow.members:
                flow.members.discard(absorbed_id)
                flow.members.add(surviving_id)

    # -- journal -------------------------------------------------------------------------------

    def _complete_run(self) -> None:
        """Complete a half-processed operation (a snapshot cannot hold one)."""
        if self._run is not None:
            while not self._process_slice(None, self.now()):
                pass

    def _journal_upsert(self, record: dict[str, Any]) -> None:
        if self.journal is not None:
            self.journal.write({"t": "upsert", **record})

    def journal_forms(self) -> None:
        """Journal the forms state after a forms request changed it."""
        if self.journal is None:
            return
        new = self.form_submissions[self._forms_saved :]
        self._forms_saved = len(self.form_submissions)
        self.journal.write(
            {"t": "forms", "forms": self.forms, "views": self.form_views, "subs": new}
        )

    def snapshot(self) -> dict[str, Any]:
        """Return the whole state as JSON-ready data (expired reports are dropped).

        A half-processed operation is completed first.
        """
        self._complete_run()
        horizon = self.now() - self.settings.report_retention_days * _DAY_S
        return {
            "people": self.people.snapshot(),
            "admin_flows": [c.model_dump() for c in self.admin_flows.values()],
            "members": {str(cid): sorted(f.members) for cid, f in self.flows.items()},
            "operations": [
                op.to_dict() for op in self.operations.values() if op.created_at >= horizon
            ],
            "credits": self.credits_left,
            "forms": self.forms,
            "views": self.form_views,
            "subs": self.form_submissions,
        }

    def _replay(self) -> None:
        assert self.settings.state_path is not None
        for record in read_journal(self.settings.state_path):
            kind = record["t"]
            if kind == "snapshot":
                self._restore(record)
            elif kind == "add":
                body = record["body"]
                op = Operation(
                    record["op"],
                    int(record["campaign"]),
                    body["participants"],
                    body.get("notifyUrl"),
                    body.get("callbackData"),
                    float(record["at"]),
                    float(record["due"]),
                    identify_by=[p["identifyBy"] for p in body["participants"]],
                )
                self._register(op)
            elif kind == "slice":
                self._replay_slice(record)
            elif kind == "upsert":
                self.people.replay_upsert(record)
            elif kind == "flow":
                self._apply_flow(FlowConfig.model_validate(record["flow"]))
            elif kind == "remove":
                flow = self.flows.get(int(record["campaign"]))
                if flow is not None:
                    flow.members.discard(int(record["pid"]))
            elif kind == "forms":
                self.forms = record["forms"]
                self.form_views = record["views"]
                self.form_submissions.extend(record["subs"])
                self._forms_saved = len(self.form_submissions)
            elif kind == "reset":
                self.people.clear()
                self.operations.clear()
                self._pending.clear()
                self._run = None
                self.form_submissions.clear()
                self.credits_left = self.settings.credits
                self._seed()
        for op in self._pending:
            if self._run is not None and op is self._run.operation:
                continue  # resumes where the journal left it
            # A scope left by a torn processing run must not make identifiers look repeated.
            self.people.end_scope(op.operation_id)

    def _replay_slice(self, record: dict[str, Any]) -> None:
        """Recompute a journaled processing slice at its original time (no callbacks)."""
        op = self.operations.get(record["op"])
        if op is None or not self._pending or self._pending[0] is not op:
            raise ValueError(f"state journal: slice of an unknown operation {record['op']}")
        if self._run is None:
            self._run = ParticipantRun(
                op,
                self.flows.get(op.campaign_id),
                self.people,
                custom_attributes=self.custom_attributes,
            )
        run = self._run
        used = run.step(
            int(record["end"]) - run.position,
            credits_left=self.credits_left,
            now=float(record["at"]),
        )
        if self.credits_left is not None:
            self.credits_left -= used
        if run.done:
            self._finish(run)

    def _restore(self, data: dict[str, Any]) -> None:
        self.people.restore(data["people"])
        for raw in data.get("admin_flows", ()):  # before the members: they may be in them
            self._apply_flow(FlowConfig.model_validate(raw))
        for cid, members in data["members"].items():
            flow = self.flows.get(int(cid))
            if flow is not None:
                flow.members = set(members)
        self.operations.clear()
        self._pending.clear()
        for raw in data["operations"]:
            self._register(Operation.from_dict(raw))
        self.credits_left = data["credits"]
        self.forms = data["forms"]
        self.form_views = data["views"]
        self.form_submissions = list(data["subs"])
        self._forms_saved = len(self.form_submissions)

    def __repr__(self) -> str:
        return (
            f"Emulator(profiles={len(self.people.profiles)}, operations={len(self.operations)},"
            f" clock={self.clock!r})"
        )
