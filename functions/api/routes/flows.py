"""/v1/flows: flows with immutable versions (admin writes), activation, the ready-made follow gate,
the simulator (the pipeline's engine on a fake contact) and the step analytics."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from api.context import deps, principal
from api.responses import documented
from replyflow.clock import utcnow
from replyflow.services import flows
from replyflow.services.flow_simulator import SimulateRequest, SimulateView
from replyflow.services.flows import (
    ActivateRequest,
    DraftSimulateRequest,
    FlowCreate,
    FlowStatsView,
    FlowVersionCreate,
    FlowVersionView,
    FlowView,
    FollowGateCreate,
    FollowGateView,
)

router = Router()


@router.get("", tags=["flows"], summary="Flows, optionally of one account", responses=documented())
def list_flows(account_id: str | None = None) -> list[FlowView]:
    with deps(router).unit_of_work() as session:
        return flows.list_flows(session, principal(router), account_id)


@router.post(
    "",
    tags=["flows"],
    summary="Create a flow (admin): its graph is version 1; errors name the step and the rule",
    responses=documented(201, 404, body=True),
)
def create(body: FlowCreate) -> Response[FlowView]:
    with deps(router).unit_of_work() as session:
        view = flows.create(session, principal(router), body)
    return Response(201, content_types.APPLICATION_JSON, view)


@router.post(
    "/follow-gate",
    tags=["flows"],
    summary="Create the follow gate (admin): comment keyword -> DM with a button -> follows? -> link",
    responses=documented(201, 402, 404, body=True),
)
def create_follow_gate(body: FollowGateCreate) -> Response[FollowGateView]:
    with deps(router).unit_of_work() as session:
        view = flows.create_follow_gate(session, deps(router).cache, principal(router), body)
    return Response(201, content_types.APPLICATION_JSON, view)


@router.post(
    "/simulate",
    tags=["flows"],
    summary="Play a conversation against an unsaved graph",
    responses=documented(200, body=True),
)
def simulate_draft(body: DraftSimulateRequest) -> SimulateView:
    return flows.simulate_draft(principal(router), body, now=utcnow())


@router.get("/<flow_id>", tags=["flows"], summary="One flow", responses=documented(200, 404))
def get_flow(flow_id: str) -> FlowView:
    with deps(router).unit_of_work() as session:
        return flows.get_flow(session, principal(router), flow_id)


@router.get(
    "/<flow_id>/versions", tags=["flows"], summary="A flow's versions", responses=documented(200, 404)
)
def list_versions(flow_id: str) -> list[FlowVersionView]:
    with deps(router).unit_of_work() as session:
        return flows.list_versions(session, principal(router), flow_id)


@router.post(
    "/<flow_id>/versions",
    tags=["flows"],
    summary="Save a new version (admin); running runs keep theirs",
    responses=documented(201, 404, body=True),
)
def add_version(flow_id: str, body: FlowVersionCreate) -> Response[FlowVersionView]:
    with deps(router).unit_of_work() as session:
        view = flows.add_version(session, principal(router), flow_id, body.graph)
    return Response(201, content_types.APPLICATION_JSON, view)


@router.post(
    "/<flow_id>/activate",
    tags=["flows"],
    summary="The version new runs start on (admin); null deactivates",
    responses=documented(200, 404, body=True),
)
def activate(flow_id: str, body: ActivateRequest) -> FlowView:
    with deps(router).unit_of_work() as session:
        return flows.activate(session, principal(router), flow_id, body.version)


@router.post(
    "/<flow_id>/simulate",
    tags=["flows"],
    summary="Play a conversation against a saved version (default: the active one)",
    responses=documented(200, 404, body=True),
)
def simulate(flow_id: str, body: SimulateRequest, version: int | None = None) -> SimulateView:
    with deps(router).unit_of_work() as session:
        return flows.simulate_flow(session, principal(router), flow_id, body, version=version, now=utcnow())


@router.get(
    "/<flow_id>/stats",
    tags=["flows"],
    summary="Step analytics per version: entered, sent, tapped, captured, completed, dropped by reason",
    responses=documented(200, 404),
)
def stats(flow_id: str) -> FlowStatsView:
    with deps(router).unit_of_work() as session:
        return flows.stats(session, principal(router), flow_id)
