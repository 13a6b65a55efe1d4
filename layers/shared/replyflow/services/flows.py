"""Flows: create, version, activate, and the ready-made follow gate (docs/flows.md).

A flow's graph is validated by ``domain.flows.parse_graph`` on every write (the errors name the step
and the rule); a version is never changed, a new graph is a new version, and activating a version
moves only the runs started after it (a run keeps its version). Every function takes the tenant from
the caller's ``Principal``; an id of another tenant is a 404.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, HttpUrl
from sqlalchemy.orm import Session

from replyflow.db.models import Flow, FlowVersion
from replyflow.db.repositories import accounts
from replyflow.db.repositories import automations as automations_repo
from replyflow.db.repositories import flows as flows_repo
from replyflow.domain.flows import FlowGraph, follow_gate_graph, parse_graph
from replyflow.errors import NotFoundError, ValidationError
from replyflow.ports import Cache
from replyflow.services import automations
from replyflow.services.access import Principal
from replyflow.services.day_range import day_range
from replyflow.services.flow_simulator import SimulateRequest, SimulateView, simulate
from replyflow.timestamps import UtcDateTime


class FlowCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: str = Field(min_length=1, max_length=26)
    name: str = Field(min_length=1, max_length=120)
    graph: dict[str, Any]
    activate: bool = True


class FlowVersionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    graph: dict[str, Any]


class FlowView(BaseModel):
    id: str
    account_id: str
    name: str
    latest_version: int
    active_version: int | None
    created_at: UtcDateTime
    updated_at: UtcDateTime


class FlowVersionView(BaseModel):
    flow_id: str
    version: int
    graph: dict[str, Any]
    created_at: UtcDateTime


class FollowGateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: str = Field(min_length=1, max_length=26)
    keyword: str = Field(min_length=1, max_length=100)
    message: str = Field(min_length=1, max_length=640)
    link: HttpUrl
    follow_first: str | None = Field(default=None, min_length=1, max_length=640)


class ActivateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(ge=1, description="null deactivates the flow (running runs go on)")


class DraftSimulateRequest(SimulateRequest):
    graph: dict[str, Any]


class StepStat(BaseModel):
    version: int
    step_id: str
    outcome: str
    reason: str | None
    count: int


class StepDayStat(StepStat):
    date: date


class FlowStatsView(BaseModel):
    flow_id: str
    steps: list[StepStat]
    totals: dict[str, int]
    since: date
    until: date
    days: list[StepDayStat] = Field(description="the step counters per UTC day of [since, until]")


class FollowGateView(BaseModel):
    flow: FlowView
    automation_id: str


def view(flow: Flow) -> FlowView:
    return FlowView.model_validate(flow, from_attributes=True)


def version_view(row: FlowVersion) -> FlowVersionView:
    return FlowVersionView.model_validate(row, from_attributes=True)


def _get(session: Session, principal: Principal, flow_id: str) -> Flow:
    flow = flows_repo.get_flow(session, principal.tenant_id, flow_id)
    if flow is None:
        raise NotFoundError("no such flow")
    return flow


def create(session: Session, principal: Principal, request: FlowCreate) -> FlowView:
    principal.require("admin")
    account = accounts.get(session, principal.tenant_id, request.account_id)
    if account is None:
        raise NotFoundError("no such account", details={"field": "account_id"})
    graph = parse_graph(request.graph)
    flow = flows_repo.create_flow(session, principal.tenant_id, request.account_id, name=request.name)
    version = flows_repo.add_version(
        session, principal.tenant_id, flow, graph.model_dump(mode="json", by_alias=True)
    )
    if request.activate:
        flow.active_version = version.version
    session.flush()
    return view(flow)


def list_flows(session: Session, principal: Principal, account_id: str | None = None) -> list[FlowView]:
    return [view(f) for f in flows_repo.list_flows(session, principal.tenant_id, account_id=account_id)]


def get_flow(session: Session, principal: Principal, flow_id: str) -> FlowView:
    return view(_get(session, principal, flow_id))


def add_version(
    session: Session, principal: Principal, flow_id: str, graph: dict[str, Any]
) -> FlowVersionView:
    principal.require("admin")
    flow = _get(session, principal, flow_id)
    parsed = parse_graph(graph)
    row = flows_repo.add_version(
        session, principal.tenant_id, flow, parsed.model_dump(mode="json", by_alias=True)
    )
    return version_view(row)


def list_versions(session: Session, principal: Principal, flow_id: str) -> list[FlowVersionView]:
    _get(session, principal, flow_id)
    return [version_view(v) for v in flows_repo.list_versions(session, principal.tenant_id, flow_id)]


def activate(session: Session, principal: Principal, flow_id: str, version: int | None) -> FlowView:
    """Make ``version`` the one new runs start on; None deactivates (running runs go on)."""
    principal.require("admin")
    flow = _get(session, principal, flow_id)
    if version is not None and flows_repo.get_version(session, principal.tenant_id, flow_id, version) is None:
        raise ValidationError(f"flow {flow_id} has no version {version}", code="no_such_version")
    if version is not None:
        _check_starters(session, principal.tenant_id, flow, version)
    flow.active_version = version
    session.flush()
    return view(flow)


def _check_starters(session: Session, tenant_id: str, flow: Flow, version: int) -> None:
    """A version whose entry does not fit an automation that starts the flow is not activated."""
    for row in automations_repo.list_for_tenant(session, tenant_id, account_id=flow.account_id):
        start = (row.actions or {}).get("start_flow")
        if isinstance(start, dict) and start.get("flow_id") == flow.id:
            automations.check_flow_entry(
                session, tenant_id, flow, row.trigger, version=version, loc=("body", "version")
            )


def create_follow_gate(
    session: Session, cache: Cache, principal: Principal, request: FollowGateCreate
) -> FollowGateView:
    """One call: the follow-gate flow on the account and a comment automation on ``keyword`` that
    starts it (docs/flows.md)."""
    graph = follow_gate_graph(request.message, str(request.link), follow_first=request.follow_first)
    flow = create(
        session,
        principal,
        FlowCreate(account_id=request.account_id, name=f"Follow gate: {request.keyword}", graph=graph),
    )
    automation = automations.create(
        session,
        cache,
        principal,
        automations.AutomationCreate(
            account_id=request.account_id,
            name=f"Follow gate: {request.keyword}",
            trigger="comment",
            match_mode="whole_word",
            keywords=[request.keyword],
            actions=automations.Actions(start_flow=automations.StartFlowAction(flow_id=flow.id)),
        ),
    )
    return FollowGateView(flow=flow, automation_id=automation.id)


def simulate_flow(
    session: Session,
    principal: Principal,
    flow_id: str,
    request: SimulateRequest,
    *,
    version: int | None,
    now: datetime,
) -> SimulateView:
    """Play ``request`` against a saved version (default: the active one, else the latest)."""
    flow = _get(session, principal, flow_id)
    number = version or flow.active_version or flow.latest_version
    row = flows_repo.get_version(session, principal.tenant_id, flow_id, number)
    if row is None:
        raise ValidationError(f"flow {flow_id} has no version {number}", code="no_such_version")
    return simulate(FlowGraph.model_validate(row.graph), request, now=now)


def simulate_draft(principal: Principal, request: DraftSimulateRequest, *, now: datetime) -> SimulateView:
    """Play a conversation against an unsaved graph (validated first, as a save would)."""
    graph = parse_graph(request.graph)
    return simulate(graph, SimulateRequest.model_validate(request.model_dump(exclude={"graph"})), now=now)


def stats(
    session: Session,
    principal: Principal,
    flow_id: str,
    *,
    since: date | None = None,
    until: date | None = None,
    now: datetime,
) -> FlowStatsView:
    """Step analytics of every version: entered, sent, tapped, captured, completed, dropped by reason,
    since the flow was created and per day of ``[since, until]`` (default: the last 7 days)."""
    since, until = day_range(since, until, now=now)
    _get(session, principal, flow_id)
    rows = flows_repo.step_stats(session, principal.tenant_id, flow_id)
    totals: dict[str, int] = {}
    for row in rows:
        totals[row.outcome] = totals.get(row.outcome, 0) + row.count
    steps = [
        StepStat(
            version=r.version, step_id=r.step_id, outcome=r.outcome, reason=r.reason or None, count=r.count
        )
        for r in rows
    ]
    days = [
        StepDayStat(
            date=r.day,
            version=r.version,
            step_id=r.step_id,
            outcome=r.outcome,
            reason=r.reason or None,
            count=r.count,
        )
        for r in flows_repo.step_days(session, principal.tenant_id, since, until, flow_id)
    ]
    return FlowStatsView(flow_id=flow_id, steps=steps, totals=totals, since=since, until=until, days=days)
