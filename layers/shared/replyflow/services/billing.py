"""Billing: checkout and portal, the provider's events as the source of truth, grace periods, and the
plan's limits as the tenant sees them (docs/billing.md).

Invariants:
- a paid plan starts only when the provider says a subscription for it is ``active``: an event names a
  subscription, and the state applied is the one the provider returns for it *now* (retrieved, not the
  event's copy), so duplicate and out-of-order deliveries converge on the same state;
- each event id is stored once, in the transaction that applies it (``billing_events``); a duplicate
  stops there, and a failure rolls both back, so the queue's retry applies it again;
- every change of a tenant's billing state holds the tenant row lock, like plan changes;
- ``past_due`` keeps the plan until ``grace_until`` (automations keep running); :func:`settle_grace`
  (the hourly usage-rollover job) then moves the tenant to free with the reason stored; a paid
  invoice afterwards restores the paid plan;
- a downgrade pauses (never deletes) the automations over the new plan's limit, lowest priority first,
  with ``paused_reason``; an upgrade resumes them up to the limit;
- the tenant's customer is created once: the provider call carries an idempotency key derived from
  the tenant, and the row's primary key keeps one per tenant.

``ManualBilling`` (plan changes without payment) is the ``BillingProvider`` of the local stack and
tests only; deployed stacks use ``adapters.stripe_billing.StripeBilling``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session, sessionmaker

from replyflow.db.engine import session_scope
from replyflow.db.models import Plan, Subscription, Tenant
from replyflow.db.repositories import billing as repo
from replyflow.db.repositories import plans, tenants, users
from replyflow.db.repositories import subscriptions as subscriptions_repo
from replyflow.db.repositories import usage as usage_repo
from replyflow.errors import BillingProviderError, ConflictError, NotFoundError, ValidationError
from replyflow.ids import new_id
from replyflow.observability import logger
from replyflow.ports import BillingChange, BillingGateway, Cache, ProviderSubscription
from replyflow.services import cache_keys, limits, write_through
from replyflow.services.access import Principal
from replyflow.services.accounts import connected_count
from replyflow.timestamps import UtcDateTime

HANDLED_EVENTS = frozenset(
    {
        "checkout.session.completed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.paid",
        "invoice.payment_failed",
    }
)
PAID_STATUSES = frozenset({"active", "trialing"})
DUNNING_STATUSES = frozenset({"past_due", "unpaid"})
ENDED_STATUSES = frozenset({"canceled", "incomplete_expired"})
FREE_PLAN = "free"
LOCAL_PERIOD = timedelta(days=30)
INVOICES_SHOWN = 12


class ManualBilling:
    """Accepts every change and names it (the local stack and tests only)."""

    name = "manual"

    def change_plan(self, tenant_id: str, plan_code: str) -> BillingChange:
        return BillingChange(self.name, f"manual_{new_id()}")

    def cancel(self, tenant_id: str, provider_ref: str | None) -> None:
        return None


@dataclass(frozen=True)
class BillingUrls:
    success_url: str
    cancel_url: str
    return_url: str


# Checkout and portal ------------------------------------------------------------------------------


class CheckoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan_code: str = Field(min_length=1, max_length=32)


class RedirectView(BaseModel):
    url: str


def ensure_customer(session: Session, gateway: BillingGateway, principal: Principal) -> str:
    """The tenant's provider customer, created at most once (see the module docstring)."""
    tenant_id = principal.tenant_id
    existing = repo.customer_ref(session, tenant_id)
    if existing is not None:
        return existing
    tenant = tenants.get(session, tenant_id)
    if tenant is None:
        raise NotFoundError("no such tenant")
    user = users.get(session, principal.user_id) if principal.user_id else None
    ref = gateway.create_customer(tenant_id, email=user.email if user else "", name=tenant.name)
    if not repo.add_customer(session, tenant_id, ref):
        stored = repo.customer_ref(session, tenant_id)
        return stored or ref
    return ref


def checkout(
    session: Session,
    gateway: BillingGateway,
    principal: Principal,
    request: CheckoutRequest,
    urls: BillingUrls,
) -> RedirectView:
    """A Checkout Session URL for a paid plan (owner). Nothing changes until the provider's events."""
    principal.require("owner")
    plan = plans.get_plan(session, request.plan_code)
    if plan is None:
        raise ValidationError(f"unknown plan {request.plan_code!r}", code="unknown_plan")
    if plan.price_cents <= 0:
        raise ConflictError(
            "the free plan needs no checkout: cancel the subscription instead", code="not_a_paid_plan"
        )
    current = subscriptions_repo.current(session, principal.tenant_id)
    if current is not None and current.provider == "stripe":
        raise ConflictError(
            "this workspace already has a paid subscription: change it in the billing portal "
            "(POST /v1/billing/portal)",
            code="already_subscribed",
        )
    customer = ensure_customer(session, gateway, principal)
    url = gateway.checkout_url(
        customer, principal.tenant_id, plan.code, success_url=urls.success_url, cancel_url=urls.cancel_url
    )
    return RedirectView(url=url)


def portal(
    session: Session, gateway: BillingGateway, principal: Principal, urls: BillingUrls
) -> RedirectView:
    principal.require("owner")
    customer = repo.customer_ref(session, principal.tenant_id)
    if customer is None:
        raise NotFoundError("this workspace has no billing account yet: start with a checkout")
    return RedirectView(url=gateway.portal_url(customer, return_url=urls.return_url))


# Events -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventRefs:
    subscription: str | None
    customer: str | None


def event_refs(event: Mapping[str, Any]) -> EventRefs:
    """Which subscription and customer an event is about."""
    obj = (event.get("data") or {}).get("object") or {}
    kind = str(event.get("type") or "")

    def text(value: Any) -> str | None:
        if isinstance(value, dict):
            value = value.get("id")
        return value if isinstance(value, str) and value else None

    if kind.startswith("customer.subscription."):
        subscription = text(obj.get("id"))
    elif kind.startswith("invoice."):
        details = ((obj.get("parent") or {}).get("subscription_details")) or {}
        subscription = text(obj.get("subscription")) or text(details.get("subscription"))
    else:
        subscription = text(obj.get("subscription"))
    # The tenant is found from our own rows (the customer we created), never from the event's metadata.
    return EventRefs(subscription=subscription, customer=text(obj.get("customer")))


def _resolve_tenant(session: Session, refs: EventRefs) -> str | None:
    if refs.customer:
        tenant_id = repo.tenant_for_customer(session, refs.customer)
        if tenant_id is not None:
            return tenant_id
    if refs.subscription:
        tenant_id = repo.tenant_for_subscription(session, refs.subscription)
        if tenant_id is not None:
            return tenant_id
    return None


def apply_event(
    sessions: sessionmaker[Session],
    cache: Cache,
    gateway: BillingGateway,
    event: Mapping[str, Any],
    *,
    now: datetime,
    grace: timedelta,
) -> str:
    """Applies one verified provider event; returns the outcome (``duplicate``, ``ignored``,
    ``activated``, ``past_due``, ...). Raises on a provider failure, so the queue retries it."""
    event_id, kind = str(event.get("id") or ""), str(event.get("type") or "")
    if not event_id:
        raise ValueError("a billing event without an id")
    refs = event_refs(event)
    with session_scope(sessions) as session:
        tenant_id = _resolve_tenant(session, refs)
        tenant = tenants.get(session, tenant_id, for_update=True) if tenant_id else None
        if not repo.record_event(session, event_id, kind, tenant.id if tenant else None):
            return "duplicate"
        outcome = _outcome(session, cache, gateway, tenant, refs, kind, now=now, grace=grace)
        repo.set_event_outcome(session, event_id, outcome)
    logger.info(
        "billing event applied",
        extra={"event_id": event_id, "type": kind, "tenant_id": tenant_id, "outcome": outcome},
    )
    return outcome


def _outcome(
    session: Session,
    cache: Cache,
    gateway: BillingGateway,
    tenant: Tenant | None,
    refs: EventRefs,
    kind: str,
    *,
    now: datetime,
    grace: timedelta,
) -> str:
    if kind not in HANDLED_EVENTS:
        return "ignored"
    if tenant is None:
        return "unknown_customer"
    if refs.subscription is None:
        return "no_subscription"
    snapshot = gateway.subscription(refs.subscription)
    customer = repo.customer_ref(session, tenant.id)
    if customer is not None and snapshot.customer_ref and snapshot.customer_ref != customer:
        return "customer_mismatch"
    return apply_snapshot(session, cache, tenant, snapshot, now=now, grace=grace)


def apply_snapshot(
    session: Session,
    cache: Cache,
    tenant: Tenant,
    snapshot: ProviderSubscription,
    *,
    now: datetime,
    grace: timedelta,
) -> str:
    """The state machine: the provider's current word on one subscription, applied to the tenant
    (whose row the caller has locked)."""
    current = subscriptions_repo.current(session, tenant.id)
    ours = current is not None and current.provider_ref == snapshot.id
    if snapshot.status in PAID_STATUSES:
        if snapshot.plan_code is None or plans.get_plan(session, snapshot.plan_code) is None:
            return "unknown_price"
        if ours and current is not None and current.plan_code == snapshot.plan_code:
            restored = current.status == "past_due"
            _refresh(current, snapshot, reason="payment received; plan restored" if restored else None)
            session.flush()
            _invalidate_tenant(session, cache, tenant.id)
            return "restored" if restored else "unchanged"
        _switch(session, cache, tenant, snapshot.plan_code, snapshot, now=now, reason="paid in Stripe")
        return "activated"
    if not ours or current is None:
        return "stale"  # about a subscription that is no longer the tenant's current one
    if snapshot.status in DUNNING_STATUSES:
        if current.status != "past_due":
            current.status = "past_due"
            current.grace_until = now + grace
            current.status_reason = (
                f"payment failed; the {current.plan_code} plan is kept until "
                f"{current.grace_until.isoformat(timespec='seconds')}Z, then the workspace moves to free"
            )
            session.flush()
            _invalidate_tenant(session, cache, tenant.id)
            logger.warning(
                "billing past due", extra={"tenant_id": tenant.id, "grace_until": str(current.grace_until)}
            )
            return "past_due"
        return "unchanged"
    if snapshot.status in ENDED_STATUSES:
        downgrade_to_free(
            session, cache, tenant, current, now=now, reason="the subscription was canceled in Stripe"
        )
        return "canceled"
    return "ignored_status"


def _refresh(sub: Subscription, snapshot: ProviderSubscription, *, reason: str | None) -> None:
    sub.status = "active"
    sub.grace_until = None
    sub.status_reason = reason
    sub.current_period_start = snapshot.current_period_start
    sub.current_period_end = snapshot.current_period_end
    sub.cancel_at_period_end = snapshot.cancel_at_period_end


def _switch(
    session: Session,
    cache: Cache,
    tenant: Tenant,
    plan_code: str,
    snapshot: ProviderSubscription,
    *,
    now: datetime,
    reason: str,
) -> None:
    current = subscriptions_repo.current(session, tenant.id)
    if current is not None:
        current.status = "replaced"
        current.canceled_at = now
    subscriptions_repo.add(
        session,
        Subscription(
            tenant_id=tenant.id,
            plan_code=plan_code,
            status="active",
            provider="stripe",
            provider_ref=snapshot.id,
            current_period_start=snapshot.current_period_start,
            current_period_end=snapshot.current_period_end,
            cancel_at_period_end=snapshot.cancel_at_period_end,
            status_reason=reason,
        ),
    )
    tenant.plan_code = plan_code
    session.flush()
    plan = plans.get_plan(session, plan_code)
    assert plan is not None
    fit_automations(session, tenant.id, plan, now=now, reason=f"over the {plan_code} plan's limit")
    _invalidate_tenant(session, cache, tenant.id)
    logger.info("billing plan changed", extra={"tenant_id": tenant.id, "plan": plan_code, "reason": reason})


def downgrade_to_free(
    session: Session,
    cache: Cache,
    tenant: Tenant,
    current: Subscription | None,
    *,
    now: datetime,
    reason: str,
) -> None:
    """The tenant moves to free now (the caller holds its row lock); the reason is stored and logged."""
    if current is not None:
        current.status = "canceled"
        current.canceled_at = now
        current.status_reason = reason
    subscriptions_repo.add(
        session,
        Subscription(
            tenant_id=tenant.id,
            plan_code=FREE_PLAN,
            status="active",
            provider="manual",
            current_period_start=now,
            current_period_end=now + LOCAL_PERIOD,
            status_reason=f"moved to free: {reason}",
        ),
    )
    tenant.plan_code = FREE_PLAN
    session.flush()
    plan = plans.get_plan(session, FREE_PLAN)
    assert plan is not None
    paused = fit_automations(
        session, tenant.id, plan, now=now, reason=f"paused on the move to free: {reason}"
    )
    _invalidate_tenant(session, cache, tenant.id)
    logger.warning(
        "billing downgrade to free", extra={"tenant_id": tenant.id, "reason": reason, "paused": paused}
    )


def fit_automations(session: Session, tenant_id: str, plan: Plan, *, now: datetime, reason: str) -> int:
    """Pauses the active automations over ``plan.max_automations`` (the last in priority order), or
    resumes paused ones up to it. Returns how many were paused (negative: resumed)."""
    active = repo.active_automations(session, tenant_id)
    over = active[plan.max_automations :]
    if over:
        repo.set_paused(session, tenant_id, [a.id for a in over], reason[:255], now)
        return len(over)
    room = plan.max_automations - len(active)
    resumable = repo.paused_automations(session, tenant_id)[: max(room, 0)]
    if resumable:
        repo.set_paused(session, tenant_id, [a.id for a in resumable], None, now)
    return -len(resumable)


def _invalidate_tenant(session: Session, cache: Cache, tenant_id: str) -> None:
    from replyflow.db.repositories import accounts

    rows = accounts.list_for_tenant(session, tenant_id)
    ig_ids = [a.ig_user_id for a in rows]
    account_ids = [a.id for a in rows]

    def drop() -> None:
        cache_keys.invalidate_tenant(cache, tenant_id, ig_ids)
        cache_keys.invalidate_automations(cache, tenant_id, account_ids)

    write_through.invalidate(session, drop)


def settle_grace(sessions: sessionmaker[Session], cache: Cache, *, now: datetime, limit: int = 500) -> int:
    """Moves tenants whose grace period has ended to free (each in its own transaction under its row
    lock, so it is safe to re-run). Returns how many moved."""
    with session_scope(sessions) as session:
        due = repo.grace_expired(session, now, limit)
    moved = 0
    for tenant_id, sub_id in due:
        with session_scope(sessions) as session:
            tenant = tenants.get(session, tenant_id, for_update=True)
            current = subscriptions_repo.current(session, tenant_id)
            if tenant is None or current is None or current.id != sub_id or current.status != "past_due":
                continue
            if current.grace_until is None or current.grace_until > now:
                continue
            reason = f"payment failed and the grace period ended ({current.plan_code} plan)"
            downgrade_to_free(session, cache, tenant, current, now=now, reason=reason)
            moved += 1
    return moved


# GET /v1/billing ----------------------------------------------------------------------------------


class UsageLine(BaseModel):
    limit: str
    used: int
    allowed: int


class InvoiceView(BaseModel):
    id: str
    number: str | None
    status: str | None
    amount_due: int
    amount_paid: int
    currency: str
    created: UtcDateTime
    hosted_invoice_url: str | None


class PausedAutomation(BaseModel):
    id: str
    name: str
    reason: str


class BillingOverview(BaseModel):
    plan_code: str
    plan_name: str
    price_cents: int
    status: str
    provider: str
    status_reason: str | None
    current_period_start: UtcDateTime | None
    current_period_end: UtcDateTime | None
    renews_at: UtcDateTime | None = Field(description="the next renewal; null when it ends or is free")
    cancel_at_period_end: bool
    grace_until: UtcDateTime | None
    usage: list[UsageLine]
    invoices: list[InvoiceView]
    invoices_unavailable: bool = Field(description="true when the provider did not answer for invoices")
    paused_automations: list[PausedAutomation]


def overview(
    session: Session, gateway: BillingGateway | None, principal: Principal, *, now: datetime
) -> BillingOverview:
    tenant_id = principal.tenant_id
    plan = plans.plan_for_tenant(session, tenant_id)
    sub = subscriptions_repo.current(session, tenant_id)
    usage = [
        UsageLine(
            limit="monthly_dm_quota",
            used=usage_repo.dms_sent(session, tenant_id, at=now),
            allowed=plan.monthly_dm_quota,
        ),
        UsageLine(limit="max_accounts", used=connected_count(session, tenant_id), allowed=plan.max_accounts),
        UsageLine(
            limit="max_automations",
            used=len(repo.active_automations(session, tenant_id)),
            allowed=plan.max_automations,
        ),
        UsageLine(
            limit="max_members",
            used=tenants.member_count(session, tenant_id),
            allowed=limits.members_allowed(plan.code),
        ),
    ]
    invoices: list[InvoiceView] = []
    unavailable = False
    customer = repo.customer_ref(session, tenant_id)
    if customer is not None and gateway is not None:
        try:
            invoices = [
                InvoiceView.model_validate(inv, from_attributes=True)
                for inv in gateway.invoices(customer, limit=INVOICES_SHOWN)
            ]
        except BillingProviderError:
            unavailable = True
    paused = [
        PausedAutomation(id=a.id, name=a.name, reason=a.paused_reason or "")
        for a in repo.paused_automations(session, tenant_id)
    ]
    paid = sub is not None and plan.price_cents > 0 and not sub.cancel_at_period_end
    return BillingOverview(
        plan_code=plan.code,
        plan_name=plan.name,
        price_cents=plan.price_cents,
        status=sub.status if sub else "active",
        provider=sub.provider if sub else "manual",
        status_reason=sub.status_reason if sub else None,
        current_period_start=sub.current_period_start if sub else None,
        current_period_end=sub.current_period_end if sub else None,
        renews_at=sub.current_period_end if paid and sub else None,
        cancel_at_period_end=bool(sub and sub.cancel_at_period_end),
        grace_until=sub.grace_until if sub else None,
        usage=usage,
        invoices=invoices,
        invoices_unavailable=unavailable,
        paused_automations=paused,
    )
