"""Flows (``/v1/flows``).

The rule every service object follows: ``replyflow.wiring.api_services``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from replyflow.wiring.api_services import UnitOfWork, service_module

if TYPE_CHECKING:
    from replyflow.ports import (
        Cache,
        NowClock,
    )
    from replyflow.services import flows
    from replyflow.services.access import Principal
    from replyflow.services.flow_simulator import SimulateRequest, SimulateView
else:  # each module imported when a service object first calls into it
    flows = service_module("flows")


@dataclass(frozen=True, eq=False)
class FlowService:
    """Flows: CRUD with immutable versions, activation, the ready-made follow gate, the simulator (the
    pipeline's engine on a fake contact) and the step analytics."""

    unit_of_work: UnitOfWork
    cache: Cache
    clock: NowClock

    def list_flows(self, principal: Principal, account_id: str | None) -> list[flows.FlowView]:
        with self.unit_of_work() as session:
            return flows.list_flows(session, principal, account_id)

    def create(self, principal: Principal, body: flows.FlowCreate) -> flows.FlowView:
        with self.unit_of_work() as session:
            return flows.create(session, principal, body)

    def create_follow_gate(self, principal: Principal, body: flows.FollowGateCreate) -> flows.FollowGateView:
        with self.unit_of_work() as session:
            return flows.create_follow_gate(session, self.cache, principal, body)

    def simulate_draft(self, principal: Principal, body: flows.DraftSimulateRequest) -> SimulateView:
        return flows.simulate_draft(principal, body, now=self.clock.now())

    def get(self, principal: Principal, flow_id: str) -> flows.FlowView:
        with self.unit_of_work() as session:
            return flows.get_flow(session, principal, flow_id)

    def versions(self, principal: Principal, flow_id: str) -> list[flows.FlowVersionView]:
        with self.unit_of_work() as session:
            return flows.list_versions(session, principal, flow_id)

    def add_version(
        self, principal: Principal, flow_id: str, body: flows.FlowVersionCreate
    ) -> flows.FlowVersionView:
        with self.unit_of_work() as session:
            return flows.add_version(session, principal, flow_id, body.graph)

    def activate(self, principal: Principal, flow_id: str, body: flows.ActivateRequest) -> flows.FlowView:
        with self.unit_of_work() as session:
            return flows.activate(session, principal, flow_id, body.version)

    def simulate(
        self, principal: Principal, flow_id: str, body: SimulateRequest, version: int | None
    ) -> SimulateView:
        with self.unit_of_work() as session:
            return flows.simulate_flow(
                session, principal, flow_id, body, version=version, now=self.clock.now()
            )

    def stats(
        self, principal: Principal, flow_id: str, since: date | None = None, until: date | None = None
    ) -> flows.FlowStatsView:
        with self.unit_of_work() as session:
            return flows.stats(session, principal, flow_id, since=since, until=until, now=self.clock.now())
