"""Automations and their dry run (``/v1/automations``).

The rule every service object follows: ``replyflow.wiring.api_services``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from replyflow.wiring.api_services import UnitOfWork, service_module

if TYPE_CHECKING:
    from replyflow.ports import (
        Cache,
        NowClock,
    )
    from replyflow.services import automation_dry_run, automation_models, automations
    from replyflow.services.access import Principal
else:  # each module imported when a service object first calls into it
    automation_dry_run = service_module("automation_dry_run")
    automation_models = service_module("automation_models")
    automations = service_module("automations")


@dataclass(frozen=True, eq=False)
class AutomationService:
    """Automations: CRUD (cached list), enable and disable."""

    unit_of_work: UnitOfWork
    cache: Cache

    def list(self, principal: Principal, account_id: str | None) -> list[automations.AutomationView]:
        """From the cache; a unit of work (and SQLAlchemy) only on a miss."""

        def load() -> list[automations.AutomationView]:
            with self.unit_of_work() as session:
                return automations.load_views(session, principal.tenant_id)

        return automation_models.list_automations(self.cache, principal.tenant_id, account_id, load)

    def get(self, principal: Principal, automation_id: str) -> automations.AutomationView:
        with self.unit_of_work() as session:
            return automations.get_automation(session, principal, automation_id)

    def create(self, principal: Principal, body: automations.AutomationCreate) -> automations.AutomationView:
        with self.unit_of_work() as session:
            return automations.create(session, self.cache, principal, body)

    def update(
        self, principal: Principal, automation_id: str, body: automations.AutomationUpdate
    ) -> automations.AutomationView:
        with self.unit_of_work() as session:
            return automations.update(session, self.cache, principal, automation_id, body)

    def set_active(
        self, principal: Principal, automation_id: str, active: bool
    ) -> automations.AutomationView:
        with self.unit_of_work() as session:
            return automations.set_active(session, self.cache, principal, automation_id, active)

    def delete(self, principal: Principal, automation_id: str) -> None:
        with self.unit_of_work() as session:
            automations.delete(session, self.cache, principal, automation_id)


@dataclass(frozen=True, eq=False)
class DryRunService:
    """An automation's dry run on the reader: the processor's plan for a sample event, sending nothing."""

    read_only: UnitOfWork
    clock: NowClock

    def run(
        self, principal: Principal, automation_id: str, body: automation_dry_run.DryRunRequest
    ) -> automation_dry_run.DryRunResult:
        with self.read_only() as session:
            return automation_dry_run.dry_run(session, principal, automation_id, body, now=self.clock.now())
