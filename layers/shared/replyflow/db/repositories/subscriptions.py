"""Subscriptions: at most one ``active`` row per tenant (the services hold the tenant row lock while
they switch it)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from replyflow.db.models import Subscription


def current(session: Session, tenant_id: str) -> Subscription | None:
    return session.scalar(
        select(Subscription)
        .where(Subscription.tenant_id == tenant_id, Subscription.status == "active")
        .order_by(Subscription.created_at.desc(), Subscription.id.desc())
        .limit(1)
    )


def add(session: Session, subscription: Subscription) -> Subscription:
    session.add(subscription)
    session.flush()
    return subscription
