from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from replyflow.db.models import Automation


def get(session: Session, tenant_id: str, automation_id: str) -> Automation | None:
    return session.scalar(
        select(Automation).where(Automation.tenant_id == tenant_id, Automation.id == automation_id)
    )


def list_for_tenant(
    session: Session, tenant_id: str, *, account_id: str | None = None, active: bool | None = None
) -> list[Automation]:
    query = select(Automation).where(Automation.tenant_id == tenant_id)
    if account_id is not None:
        query = query.where(Automation.account_id == account_id)
    if active is not None:
        query = query.where(Automation.active == active)
    return list(session.scalars(query.order_by(Automation.priority, Automation.created_at)))


def count_for_tenant(session: Session, tenant_id: str) -> int:
    return (
        session.scalar(select(func.count()).select_from(Automation).where(Automation.tenant_id == tenant_id))
        or 0
    )


def active_count(session: Session, tenant_id: str) -> int:
    stmt = (
        select(func.count())
        .select_from(Automation)
        .where(Automation.tenant_id == tenant_id, Automation.active.is_(True))
    )
    return int(session.scalar(stmt) or 0)


def by_name(session: Session, tenant_id: str, name: str) -> Automation | None:
    return session.scalar(
        select(Automation).where(Automation.tenant_id == tenant_id, Automation.name == name)
    )


def deactivate_for_account(session: Session, tenant_id: str, account_id: str, now: datetime) -> None:
    session.execute(
        update(Automation)
        .where(Automation.tenant_id == tenant_id, Automation.account_id == account_id)
        .values(active=False, updated_at=now)
    )
