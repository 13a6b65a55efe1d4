"""Subscriptions: at most one current row per tenant, ``active`` or ``past_due`` (in its grace period;
the services hold the tenant row lock while they switch it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from replyflow.db.models import Subscription

CURRENT_STATUSES = ("active", "past_due")


def current(session: Session, tenant_id: str) -> Subscription | None:
    return session.scalar(
        select(Subscription)
        .where(Subscription.tenant_id == tenant_id, Subscription.status.in_(CURRENT_STATUSES))
        .order_by(Subscription.created_at.desc(), Subscription.id.desc())
        .limit(1)
    )


def add(session: Session, subscription: Subscription) -> Subscription:
    session.add(subscription)
    session.flush()
    return subscription


def due_for_period_end(session: Session, now: datetime, limit: int = 500) -> list[tuple[str, str]]:
    """(tenant_id, subscription id) of active subscriptions whose period has ended. A scheduled job's
    cross-tenant scan: each row is then settled under its own tenant's lock. Stripe's subscriptions
    are left out: Stripe renews or ends them and its webhooks say so (services/billing.py)."""
    rows = session.execute(
        select(Subscription.tenant_id, Subscription.id)
        .where(
            Subscription.status == "active",
            Subscription.current_period_end <= now,
            Subscription.provider != "stripe",
        )
        .order_by(Subscription.current_period_end)
        .limit(limit)
    )
    return [(tenant_id, sub_id) for tenant_id, sub_id in rows]
