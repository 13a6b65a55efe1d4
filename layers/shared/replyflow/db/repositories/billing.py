"""Billing rows: the tenant's provider customer, provider event ids, billing's view of subscriptions
and automations (services/billing.py).

Two lookups are cross-tenant by nature, like webhook routing: an event names a customer or a
subscription, never our tenant, so :func:`tenant_for_customer` and :func:`tenant_for_subscription`
answer which tenant it is; every other function takes the tenant id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from replyflow.db.models import Automation, BillingCustomer, BillingEvent, Subscription


def customer_ref(session: Session, tenant_id: str) -> str | None:
    return session.scalar(select(BillingCustomer.customer_ref).where(BillingCustomer.tenant_id == tenant_id))


def add_customer(session: Session, tenant_id: str, ref: str, *, provider: str = "stripe") -> bool:
    """Stores the tenant's customer; False when the tenant already has one (the caller keeps that)."""
    try:
        with session.begin_nested():
            session.add(BillingCustomer(tenant_id=tenant_id, provider=provider, customer_ref=ref))
    except IntegrityError:
        return False
    return True


def customer_count(session: Session, tenant_id: str) -> int:
    stmt = select(func.count()).select_from(BillingCustomer).where(BillingCustomer.tenant_id == tenant_id)
    return int(session.scalar(stmt) or 0)


def tenant_for_customer(session: Session, ref: str) -> str | None:
    return session.scalar(select(BillingCustomer.tenant_id).where(BillingCustomer.customer_ref == ref))


def tenant_for_subscription(session: Session, provider_ref: str) -> str | None:
    return session.scalar(
        select(Subscription.tenant_id).where(Subscription.provider_ref == provider_ref).limit(1)
    )


def record_event(session: Session, event_id: str, event_type: str, tenant_id: str | None) -> bool:
    """Inserts the event id; False for one seen before (a duplicate delivery: nothing more to do)."""
    try:
        with session.begin_nested():
            session.add(BillingEvent(id=event_id, type=event_type[:64], tenant_id=tenant_id))
    except IntegrityError:
        return False
    return True


def set_event_outcome(session: Session, event_id: str, outcome: str) -> None:
    session.execute(update(BillingEvent).where(BillingEvent.id == event_id).values(outcome=outcome[:64]))


def events_for_tenant(session: Session, tenant_id: str, limit: int = 20) -> list[BillingEvent]:
    stmt = (
        select(BillingEvent)
        .where(BillingEvent.tenant_id == tenant_id)
        .order_by(BillingEvent.received_at.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def by_provider_ref(session: Session, tenant_id: str, provider_ref: str) -> list[Subscription]:
    stmt = (
        select(Subscription)
        .where(Subscription.tenant_id == tenant_id, Subscription.provider_ref == provider_ref)
        .order_by(Subscription.created_at)
    )
    return list(session.scalars(stmt))


def grace_expired(session: Session, now: datetime, limit: int = 500) -> list[tuple[str, str]]:
    """(tenant_id, subscription id) of past-due subscriptions whose grace period has ended: a scheduled
    job's cross-tenant scan; each one is then settled under its tenant's lock."""
    rows = session.execute(
        select(Subscription.tenant_id, Subscription.id)
        .where(Subscription.status == "past_due", Subscription.grace_until <= now)
        .order_by(Subscription.grace_until)
        .limit(limit)
    )
    return [(tenant_id, sub_id) for tenant_id, sub_id in rows]


def active_automations(session: Session, tenant_id: str) -> list[Automation]:
    """The tenant's active automations, the ones kept first: by priority (lower first), then oldest."""
    stmt = (
        select(Automation)
        .where(Automation.tenant_id == tenant_id, Automation.active.is_(True))
        .order_by(Automation.priority, Automation.created_at, Automation.id)
    )
    return list(session.scalars(stmt))


def paused_automations(session: Session, tenant_id: str) -> list[Automation]:
    """Automations billing paused (``paused_reason`` set), in the order they are resumed."""
    stmt = (
        select(Automation)
        .where(
            Automation.tenant_id == tenant_id,
            Automation.active.is_(False),
            Automation.paused_reason.is_not(None),
        )
        .order_by(Automation.priority, Automation.created_at, Automation.id)
    )
    return list(session.scalars(stmt))


def set_paused(session: Session, tenant_id: str, ids: list[str], reason: str | None, now: datetime) -> int:
    """Pauses (``reason``) or resumes (None) these automations of the tenant."""
    if not ids:
        return 0
    stmt = (
        update(Automation)
        .where(Automation.tenant_id == tenant_id, Automation.id.in_(ids))
        .values(active=reason is None, paused_reason=reason, updated_at=now)
    )
    return int(cast("CursorResult[Any]", session.execute(stmt)).rowcount)
