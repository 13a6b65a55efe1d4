"""/v1/flows: flows with immutable versions (admin writes), activation, the ready-made follow gate,
the simulator (the pipeline's engine on a fake contact) and the step analytics."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from api.context import deps, principal
from api.responses import documented
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
from replyflow.timestamps import IsoDate

router = Router()


@router.get("", tags=["flows"], summary="Flows, optionally of one account", responses=documented())
def list_flows(account_id: str | None = None) -> list[FlowView]:
    return deps(router).flows.list_flows(principal(router), account_id)


@router.post(
    "",
    tags=["flows"],
    summary="Create a flow (admin): its graph is version 1; errors name the step and the rule",
    responses=documented(201, 404, body=True),
)
def create(body: FlowCreate) -> Response[FlowView]:
    view = deps(router).flows.create(principal(router), body)
    return Response(201, content_types.APPLICATION_JSON, view)


@router.post(
    "/follow-gate",
    tags=["flows"],
    summary="Create the follow gate (admin): comment keyword -> DM with a button -> follows? -> link",
    responses=documented(201, 402, 404, body=True),
)
def create_follow_gate(body: FollowGateCreate) -> Response[FollowGateView]:
    view = deps(router).flows.create_follow_gate(principal(router), body)
    return Response(201, content_types.APPLICATION_JSON, view)


@router.post(
    "/simulate",
    tags=["flows"],
    summary="Play a conversation against an unsaved graph",
    responses=documented(200, body=True),
)
def simulate_draft(body: DraftSimulateRequest) -> SimulateView:
    return deps(router).flows.simulate_draft(principal(router), body)


@router.get("/<flow_id>", tags=["flows"], summary="One flow", responses=documented(200, 404))
def get_flow(flow_id: str) -> FlowView:
    return deps(router).flows.get(principal(router), flow_id)


@router.get(
    "/<flow_id>/versions", tags=["flows"], summary="A flow's versions", responses=documented(200, 404)
)
def list_versions(flow_id: str) -> list[FlowVersionView]:
    return deps(router).flows.versions(principal(router), flow_id)


@router.post(
    "/<flow_id>/versions",
    tags=["flows"],
    summary="Save a new version (admin); running runs keep theirs",
    responses=documented(201, 404, body=True),
)
def add_version(flow_id: str, body: FlowVersionCreate) -> Response[FlowVersionView]:
    view = deps(router).flows.add_version(principal(router), flow_id, body)
    return Response(201, content_types.APPLICATION_JSON, view)


@router.post(
    "/<flow_id>/activate",
    tags=["flows"],
    summary="The version new runs start on (admin); null deactivates",
    responses=documented(200, 404, body=True),
)
def activate(flow_id: str, body: ActivateRequest) -> FlowView:
    return deps(router).flows.activate(principal(router), flow_id, body)


@router.post(
    "/<flow_id>/simulate",
    tags=["flows"],
    summary="Play a conversation against a saved version (default: the active one)",
    responses=documented(200, 404, body=True),
)
def simulate(flow_id: str, body: SimulateRequest, version: int | None = None) -> SimulateView:
    return deps(router).flows.simulate(principal(router), flow_id, body, version)


@router.get(
    "/<flow_id>/stats",
    tags=["flows"],
    summary="Step analytics per version, in total and per day: entered, sent, tapped, completed, dropped...",
    responses=documented(200, 404),
)
def stats(
    flow_id: str,
    since: Annotated[IsoDate | None, Query(description="YYYY-MM-DD; default: 6 days before until")] = None,
    until: Annotated[IsoDate | None, Query(description="YYYY-MM-DD, inclusive; default: today (UTC)")] = None,
) -> FlowStatsView:
    return deps(router).flows.stats(principal(router), flow_id, since, until)
