"""Handlers of the Moments flow operations: add participants, report, remove participant.

Reading of the report's 404: the spec gives 404 with an ``application/json`` content and no
schema or example. The emulator answers it in the ExceptionResponse shape the other flow
404s use (``{"errorCode": "40403", "errorMessage": ...}``, errorCode as a string like the
spec's examples, 40403 being the table's "not found" code that is not about flows or people),
so a client reads every flow 404 the same way. Unknown, foreign and expired (30 days)
operations are answered alike. A report request without ``operationId`` (or with a campaignId
that is not a number) is answered the same 404: the operation documents no 400, and "no such
operation" is what the spec lets it say.

Reading of a campaignId that is not a number: a malformed request, so 400 on the two operations
that document one: add answers the problem object (the documented "Failed to read request"
shape), remove answers ExceptionResponse ``40001 Bad request`` (its only documented 400 shape).

The deprecated ``POST /communication/1/flows/{campaignId}/participants`` (add-people-to-flow,
sunset 2024-10-25) is not routed: it answers 405.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .errors import exception_response, json_response, problem_response
from .flows import RequestInvalid, parse_add_request
from .state import Emulator

__all__ = ["api_routes"]


def _campaign_id(request: Request) -> int | None:
    try:
        return int(request.path_params["campaignId"])
    except ValueError:
        return None


def _flow_not_found(campaign_id: object) -> Response:
    return exception_response(
        404, "40401", f"Could not find active flow for campaign {campaign_id}"
    )


async def add_flow_participants(request: Request) -> Response:
    """``add-flow-participants``: validate, queue, answer ``{"operationId": ...}`` at once."""
    emulator: Emulator = request.app.state.emulator
    path = request.url.path
    campaign_id = _campaign_id(request)
    if campaign_id is None:
        return problem_response(path)
    body = await request.body()
    try:
        add = parse_add_request(body)
    except RequestInvalid as exc:
        if exc.message is None:
            return problem_response(path)
        return exception_response(400, "400", exc.message)
    if emulator.active_flow(campaign_id) is None:
        return _flow_not_found(campaign_id)
    operation = emulator.accept(campaign_id, add, body)
    return json_response({"operationId": operation.operation_id})


async def get_report(request: Request) -> Response:
    """``get-flow-participants-added-report``."""
    emulator: Emulator = request.app.state.emulator
    campaign_id = _campaign_id(request)
    operation_id = request.query_params.get("operationId") or ""
    report = None
    if campaign_id is not None and operation_id:
        report = emulator.report(campaign_id, operation_id)
    if report is None:
        return exception_response(404, "40403", f"Could not find operation {operation_id}")
    return json_response(report)


async def remove_participant(request: Request) -> Response:
    """``remove-people-from-flow``: 200 when removed, ExceptionResponse otherwise."""
    emulator: Emulator = request.app.state.emulator
    campaign_id = _campaign_id(request)
    if campaign_id is None:
        return exception_response(400, "40001", "Bad request")
    query = request.query_params
    outcome = emulator.remove(
        campaign_id,
        phone=query.get("phone"),
        email=query.get("email"),
        external_id=query.get("externalId"),
    )
    if outcome.status == 200:
        return Response(status_code=200)
    assert outcome.error_code is not None and outcome.message is not None
    return exception_response(outcome.status, outcome.error_code, outcome.message)


def api_routes() -> list[BaseRoute]:
    """Return the routes of the flow operations."""
    return [
        Route(
            "/moments/1/flows/{campaignId}/participants",
            add_flow_participants,
            methods=["POST"],
        ),
        Route("/moments/1/flows/{campaignId}/participants/report", get_report, methods=["GET"]),
        Route(
            "/communication/1/flows/{campaignId}/participants",
            remove_participant,
            methods=["DELETE"],
        ),
    ]
