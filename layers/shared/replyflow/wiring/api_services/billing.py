"""Plans, subscriptions and Stripe billing (``/v1/subscriptions``, ``/v1/billing``).

The rule every service object follows: ``replyflow.wiring.api_services``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from replyflow.wiring.api_services import UnitOfWork, service_module

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from replyflow.ports import (
        BillingGateway,
        BillingProvider,
        Cache,
        NowClock,
    )
    from replyflow.services import billing, subscriptions
    from replyflow.services.access import Principal
else:  # each module imported when a service object first calls into it
    billing = service_module("billing")
    subscriptions = service_module("subscriptions")


@dataclass(frozen=True, eq=False)
class SubscriptionService:
    """The plan catalogue, the current subscription, plan changes (idempotent) and cancellation.

    ``change_plan`` runs its own transactions on ``sessions`` (the idempotency record commits apart
    from the change), so it takes the session factory rather than one unit of work."""

    unit_of_work: UnitOfWork
    sessions: Callable[[], sessionmaker[Session]]
    cache: Cache
    billing: BillingProvider
    clock: NowClock

    def plans(self) -> list[subscriptions.PlanView]:
        with self.unit_of_work() as session:
            return subscriptions.list_plans(session, self.cache)

    def current(self, principal: Principal) -> subscriptions.SubscriptionView:
        with self.unit_of_work() as session:
            return subscriptions.current(session, principal)

    def change_plan(
        self, principal: Principal, body: subscriptions.ChangePlanRequest, idempotency_key: str | None
    ) -> subscriptions.IdempotentResult:
        return subscriptions.change_plan_idempotent(
            self.sessions(),
            self.cache,
            self.billing,
            principal,
            body,
            idempotency_key,
            now=self.clock.now(),
        )

    def cancel(self, principal: Principal) -> subscriptions.SubscriptionView:
        with self.unit_of_work() as session:
            return subscriptions.cancel(session, self.cache, self.billing, principal, now=self.clock.now())


@dataclass(frozen=True, eq=False)
class BillingService:
    """Stripe billing: the overview (plan, period, usage, invoices), Checkout and Portal URLs. A plan
    changes only when Stripe's webhook says so (``services.billing.apply_event``)."""

    unit_of_work: UnitOfWork
    gateway: Callable[[], BillingGateway]
    urls: Callable[[], billing.BillingUrls]
    clock: NowClock

    def overview(self, principal: Principal) -> billing.BillingOverview:
        with self.unit_of_work() as session:
            return billing.overview(session, self.gateway(), principal, now=self.clock.now())

    def checkout(self, principal: Principal, body: billing.CheckoutRequest) -> billing.RedirectView:
        with self.unit_of_work() as session:
            return billing.checkout(session, self.gateway(), principal, body, self.urls())

    def portal(self, principal: Principal) -> billing.RedirectView:
        with self.unit_of_work() as session:
            return billing.portal(session, self.gateway(), principal, self.urls())
