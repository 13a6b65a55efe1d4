from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from replyflow.db.models import InstagramAccount


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
