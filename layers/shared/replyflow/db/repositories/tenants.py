"""Tenants and memberships. A membership row is what ties a user to a tenant with a role."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from replyflow.db.models import Membership, Plan, Tenant, User


def get(session: Session, tenant_id: str, *, for_update: bool = False) -> Tenant | None:
    query = select(Tenant).where(Tenant.id == tenant_id)
    if for_update:
        query = query.with_for_update()
    return session.scalar(query)


def slug_taken(session: Session, slug: str) -> bool:
    return session.scalar(select(func.count()).select_from(Tenant).where(Tenant.slug == slug)) != 0


def add(session: Session, *, name: str, slug: str, plan_code: str) -> Tenant:
    tenant = Tenant(name=name, slug=slug, plan_code=plan_code, status="active")
    session.add(tenant)
    session.flush()
    return tenant


def add_member(session: Session, tenant_id: str, user_id: str, role: str) -> Membership:
    membership = Membership(tenant_id=tenant_id, user_id=user_id, role=role)
    session.add(membership)
    session.flush()
    return membership


def membership(session: Session, tenant_id: str, user_id: str) -> Membership | None:
    return session.get(Membership, (tenant_id, user_id))


def members(session: Session, tenant_id: str) -> list[tuple[Membership, User]]:
    rows = session.execute(
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.tenant_id == tenant_id)
        .order_by(Membership.created_at, User.email)
    )
    return [(m, u) for m, u in rows]


def owner_count(session: Session, tenant_id: str, *, for_update: bool = False) -> int:
    """With ``for_update`` a locking read: it sees the latest committed owners, not the transaction's
    snapshot, and holds their rows until commit (call it after locking the tenant row)."""
    if for_update:
        rows = session.scalars(
            select(Membership.user_id)
            .where(Membership.tenant_id == tenant_id, Membership.role == "owner")
            .with_for_update()
        )
        return len(list(rows))
    return (
        session.scalar(
            select(func.count())
            .select_from(Membership)
            .where(Membership.tenant_id == tenant_id, Membership.role == "owner")
        )
        or 0
    )


def member_count(session: Session, tenant_id: str) -> int:
    return (
        session.scalar(select(func.count()).select_from(Membership).where(Membership.tenant_id == tenant_id))
        or 0
    )


def remove_member(session: Session, tenant_id: str, user_id: str) -> None:
    found = membership(session, tenant_id, user_id)
    if found is not None:
        session.delete(found)
        session.flush()


def memberships_of_user(session: Session, user_id: str) -> list[Membership]:
    """The user's tenants, oldest first (login picks the first unless one is named)."""
    return list(
        session.scalars(
            select(Membership).where(Membership.user_id == user_id).order_by(Membership.created_at)
        )
    )


def workspaces_of_user(session: Session, user_id: str) -> list[tuple[Membership, Tenant]]:
    """The user's memberships with their tenants, oldest first. Keyed by the user, not a tenant: it
    only ever reads the rows that name this user (``ix_memberships_user`` leads the plan)."""
    rows = session.execute(
        select(Membership, Tenant)
        .join(Tenant, Tenant.id == Membership.tenant_id)
        .where(Membership.user_id == user_id)
        .order_by(Membership.created_at, Membership.tenant_id)
    )
    return [(m, t) for m, t in rows]


def by_slug(session: Session, slug: str) -> Tenant | None:
    return session.scalar(select(Tenant).where(Tenant.slug == slug))


def all_ids(session: Session) -> list[str]:
    """Every tenant's id, ordered (the platform jobs walk them all)."""
    return list(session.scalars(select(Tenant.id).order_by(Tenant.id)))


def log_retention_days(session: Session, tenant_ids: list[str] | None = None) -> list[tuple[str, int]]:
    """``(tenant id, plan's log retention days)`` by tenant id; tenants without a plan row are skipped."""
    stmt = select(Tenant.id, Plan.log_retention_days).join(Plan, Plan.code == Tenant.plan_code)
    if tenant_ids:
        stmt = stmt.where(Tenant.id.in_(tenant_ids))
    return [(t, int(d)) for t, d in session.execute(stmt.order_by(Tenant.id))]
