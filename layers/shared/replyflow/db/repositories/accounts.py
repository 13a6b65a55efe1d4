from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from replyflow.db.models import Automation, InstagramAccount, Plan, Tenant


class RouteRow(NamedTuple):
    """What the webhook needs to route an event: the account, its tenant and the plan's priority."""

    tenant_id: str
    account_id: str
    status: str
    priority: str | None


class ReconcileTarget(NamedTuple):
    account_id: str
    tenant_id: str
    ig_user_id: str
    priority: str | None


def resolve_by_ig_user_id(session: Session, ig_user_id: str) -> InstagramAccount | None:
    """Routing lookup: webhook entry.id -> account (and so tenant). Tenant-blind by necessity."""
    return session.scalar(select(InstagramAccount).where(InstagramAccount.ig_user_id == ig_user_id))


def get(session: Session, tenant_id: str, account_id: str) -> InstagramAccount | None:
    return session.scalar(
        select(InstagramAccount).where(
            InstagramAccount.tenant_id == tenant_id, InstagramAccount.id == account_id
        )
    )


def list_for_tenant(session: Session, tenant_id: str) -> list[InstagramAccount]:
    return list(
        session.scalars(
            select(InstagramAccount)
            .where(InstagramAccount.tenant_id == tenant_id)
            .order_by(InstagramAccount.created_at)
        )
    )


def count_for_tenant(session: Session, tenant_id: str) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(InstagramAccount).where(InstagramAccount.tenant_id == tenant_id)
        )
        or 0
    )


def set_status(
    session: Session, tenant_id: str, account_id: str, status: str, reason: str | None = None
) -> InstagramAccount | None:
    account = get(session, tenant_id, account_id)
    if account is not None:
        account.status = status
        account.status_reason = reason
        session.flush()
    return account


def flag_if_token(
    session: Session, tenant_id: str, account_id: str, token_blob: bytes, status: str, reason: str | None
) -> bool:
    """Set ``status`` only while the account still holds ``token_blob`` (the token that failed): a
    reconnect or a refresh that stored a new token meanwhile wins (and a disconnect dropped it). True
    when the account holds that token."""
    result = session.execute(
        update(InstagramAccount)
        .where(
            InstagramAccount.tenant_id == tenant_id,
            InstagramAccount.id == account_id,
            InstagramAccount.access_token_encrypted == token_blob,
        )
        .values(status=status, status_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def route_row(session: Session, ig_user_id: str) -> RouteRow | None:
    """The cold path of webhook routing (account, tenant, plan priority). Tenant-blind by necessity."""
    row = session.execute(
        select(InstagramAccount.tenant_id, InstagramAccount.id, InstagramAccount.status, Plan.queue_priority)
        .join(Tenant, Tenant.id == InstagramAccount.tenant_id)
        .join(Plan, Plan.code == Tenant.plan_code)
        .where(InstagramAccount.ig_user_id == ig_user_id)
    ).first()
    return None if row is None else RouteRow(*row)


def ids_for_tenant(session: Session, tenant_id: str) -> list[str]:
    return list(session.scalars(select(InstagramAccount.id).where(InstagramAccount.tenant_id == tenant_id)))


def active_ids(session: Session, tenant_ids: list[str] | None = None) -> list[str]:
    """Ids of active accounts by id: every tenant's (the platform jobs), or ``tenant_ids``'."""
    stmt = (
        select(InstagramAccount.id).where(InstagramAccount.status == "active").order_by(InstagramAccount.id)
    )
    if tenant_ids is not None:
        stmt = stmt.where(InstagramAccount.tenant_id.in_(tenant_ids))
    return list(session.scalars(stmt))


def refresh_candidates(
    session: Session, now: datetime, window: timedelta, min_age: timedelta, tenant_ids: list[str] | None
) -> list[str]:
    """Ids of active accounts whose token expires before ``now + window`` and was issued at least
    ``min_age`` ago (or at an unknown time), soonest expiry first; every tenant's, or ``tenant_ids``'."""
    stmt = (
        select(InstagramAccount.id)
        .where(
            InstagramAccount.status == "active",
            InstagramAccount.token_expires_at.is_not(None),
            InstagramAccount.token_expires_at < now + window,
            or_(
                InstagramAccount.token_issued_at.is_(None),
                InstagramAccount.token_issued_at <= now - min_age,
            ),
        )
        .order_by(InstagramAccount.token_expires_at)
    )
    if tenant_ids is not None:
        stmt = stmt.where(InstagramAccount.tenant_id.in_(tenant_ids))
    return list(session.scalars(stmt))


def with_active_comment_automations(session: Session, tenant_ids: list[str] | None) -> list[ReconcileTarget]:
    """Active accounts with at least one active comment automation, with their plan's priority."""
    stmt = (
        select(
            InstagramAccount.id, InstagramAccount.tenant_id, InstagramAccount.ig_user_id, Plan.queue_priority
        )
        .join(Tenant, Tenant.id == InstagramAccount.tenant_id)
        .join(Plan, Plan.code == Tenant.plan_code)
        .where(
            InstagramAccount.status == "active",
            select(Automation.id)
            .where(
                Automation.tenant_id == InstagramAccount.tenant_id,
                Automation.account_id == InstagramAccount.id,
                Automation.active.is_(True),
                Automation.trigger == "comment",
            )
            .exists(),
        )
        .order_by(InstagramAccount.id)
    )
    if tenant_ids is not None:
        stmt = stmt.where(InstagramAccount.tenant_id.in_(tenant_ids))
    return [ReconcileTarget(*row) for row in session.execute(stmt)]
