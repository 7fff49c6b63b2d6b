"""The ``/_emulator/`` inspection and control API (no auth; the real service has no such prefix).

Read: people, merges, flow memberships, operations, form submissions and views, the request
log, recorded exchanges (when recording), callback attempts, faults. Control: add or change a
flow without a restart (POST flows), replace faults (PUT), queue deterministic faults (POST
faults/next), advance a manual clock, reset. On a
manual clock reads first process what is due so that what a test sees matches what a report
would say; on the wall clock they show the state as the background worker has left it
(``Emulator.catch_up``), so a read never stalls the server.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .clock import ManualClock
from .errors import json_response
from .flows import FlowState
from .settings import FaultSettings, FlowConfig, QueuedFault
from .state import Emulator

__all__ = ["inspection_routes"]

_QUEUED = TypeAdapter(QueuedFault | list[QueuedFault])


def _emulator(request: Request) -> Emulator:
    emulator: Emulator = request.app.state.emulator
    emulator.catch_up()
    return emulator


def _bad(detail: object) -> Response:
    return json_response({"error": detail}, 400)


async def people(request: Request) -> Response:
    """All profiles."""
    return json_response([p.to_dict() for p in _emulator(request).people.profiles.values()])


async def merges(request: Request) -> Response:
    """Every merge, in order."""
    return json_response([m.to_dict() for m in _emulator(request).people.merges])


async def flows(request: Request) -> Response:
    """The flows with their configuration and member counts."""
    emulator = _emulator(request)
    return json_response([_flow_view(f) for f in emulator.flows.values()])


class _FlowBody(BaseModel):
    """Body of ``POST /_emulator/flows``: the shape ``GET /_emulator/flows`` shows."""

    model_config = ConfigDict(extra="forbid")

    campaignId: int = Field(gt=0)  # the spelling GET shows (the spec's)
    name: str | None = None
    active: bool = True
    allowReentry: bool = False


def _flow_view(flow: FlowState) -> dict[str, Any]:
    return {
        "campaignId": flow.config.campaign_id,
        "name": flow.config.name,
        "active": flow.config.active,
        "allowReentry": flow.config.allow_reentry,
        "participants": len(flow.members),
    }


async def put_flow(request: Request) -> Response:
    """Add a flow (201) or change one's name/active/allowReentry (200), without a restart."""
    emulator: Emulator = request.app.state.emulator
    try:
        body = _FlowBody.model_validate_json(await request.body())
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"]) or "$", "problem": e["msg"]}
            for e in exc.errors(include_input=False)
        ]
        return _bad(problems)
    config = FlowConfig(
        campaign_id=body.campaignId,
        name=body.name,
        active=body.active,
        allow_reentry=body.allowReentry,
    )
    created = emulator.put_flow(config)
    return json_response(_flow_view(emulator.flows[config.campaign_id]), 201 if created else 200)


async def flow_participants(request: Request) -> Response:
    """Profiles currently in a flow."""
    emulator = _emulator(request)
    try:
        flow = emulator.flows.get(int(request.path_params["campaignId"]))
    except ValueError:
        flow = None
    if flow is None:
        return json_response({"error": "unknown flow"}, 404)
    profiles = (emulator.people.profiles.get(pid) for pid in sorted(flow.members))
    return json_response([p.to_dict() for p in profiles if p is not None])


async def operation(request: Request) -> Response:
    """One operation's report and internal timing."""
    emulator = _emulator(request)
    op = emulator.operations.get(request.path_params["operationId"])
    if op is None:
        return json_response({"error": "unknown operation"}, 404)
    return json_response({"report": op.report(), "createdAt": op.created_at, "dueAt": op.due_at})


async def form_submissions(request: Request) -> Response:
    """Submissions of one form (entries whose ``formId`` is the id)."""
    form_id = request.path_params["id"]
    subs = _emulator(request).form_submissions
    return json_response([s for s in subs if s.get("formId") == form_id])


async def form_views(request: Request) -> Response:
    """View count of one form."""
    form_id = request.path_params["id"]
    return json_response({"id": form_id, "views": _emulator(request).form_views.get(form_id, 0)})


async def requests_log(request: Request) -> Response:
    """The request log (never holds Authorization)."""
    return json_response(list(_emulator(request).request_log))


async def exchanges(request: Request) -> Response:
    """Every recorded exchange (404 unless ``record_exchanges`` is on).

    For contract tests of a subprocess-served emulator. Reading the record changes nothing:
    unlike the other reads it never processes due operations.
    """
    emulator: Emulator = request.app.state.emulator
    if not emulator.settings.record_exchanges:
        return json_response({"error": "record_exchanges is off"}, 404)
    return json_response([e.to_dict() for e in emulator.exchanges])


async def callbacks(request: Request) -> Response:
    """Every callback delivery attempt."""
    return json_response([a.to_dict() for a in _emulator(request).callbacks.attempts])


async def get_faults(request: Request) -> Response:
    """Fault settings and the deterministic queue."""
    return json_response(_emulator(request).faults.view())


async def put_faults(request: Request) -> Response:
    """Replace the fault settings (body: FaultSettings)."""
    emulator: Emulator = request.app.state.emulator
    try:
        settings = FaultSettings.model_validate_json(await request.body())
    except ValidationError as exc:
        return _bad(exc.errors(include_url=False, include_context=False))
    emulator.faults.configure(settings)
    return json_response(emulator.faults.view())


async def next_faults(request: Request) -> Response:
    """Queue deterministic faults (body: one QueuedFault or a list)."""
    emulator: Emulator = request.app.state.emulator
    try:
        queued = _QUEUED.validate_json(await request.body())
    except ValidationError as exc:
        return _bad(exc.errors(include_url=False, include_context=False))
    for fault in queued if isinstance(queued, list) else [queued]:
        emulator.faults.enqueue(fault)
    return json_response(emulator.faults.view())


async def advance_clock(request: Request) -> Response:
    """Advance the manual clock by ``{"seconds": n}`` and process what became due."""
    emulator: Emulator = request.app.state.emulator
    if not isinstance(emulator.clock, ManualClock):
        return json_response({"error": "the emulator runs on the wall clock"}, 409)
    try:
        data: Any = orjson.loads(await request.body())
        seconds = float(data["seconds"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return _bad('body must be {"seconds": <number >= 0>}')
    if seconds < 0:
        return _bad("seconds must be >= 0")
    emulator.advance(seconds)
    return json_response({"now": emulator.now()})


async def reset(request: Request) -> Response:
    """Return to the seeded state."""
    emulator: Emulator = request.app.state.emulator
    emulator.reset()
    return json_response({"reset": True})


def inspection_routes() -> list[BaseRoute]:
    """Return the ``/_emulator/`` routes."""
    p = "/_emulator"
    return [
        Route(f"{p}/people", people, methods=["GET"]),
        Route(f"{p}/merges", merges, methods=["GET"]),
        Route(f"{p}/flows", flows, methods=["GET"]),
        Route(f"{p}/flows", put_flow, methods=["POST"]),
        Route(f"{p}/flows/{{campaignId}}/participants", flow_participants, methods=["GET"]),
        Route(f"{p}/operations/{{operationId}}", operation, methods=["GET"]),
        Route(f"{p}/forms/{{id}}/submissions", form_submissions, methods=["GET"]),
        Route(f"{p}/forms/{{id}}/views", form_views, methods=["GET"]),
        Route(f"{p}/requests", requests_log, methods=["GET"]),
        Route(f"{p}/exchanges", exchanges, methods=["GET"]),
        Route(f"{p}/callbacks", callbacks, methods=["GET"]),
        Route(f"{p}/faults", get_faults, methods=["GET"]),
        Route(f"{p}/faults", put_faults, methods=["PUT"]),
        Route(f"{p}/faults/next", next_faults, methods=["POST"]),
        Route(f"{p}/clock/advance", advance_clock, methods=["POST"]),
        Route(f"{p}/reset", reset, methods=["POST"]),
    ]
