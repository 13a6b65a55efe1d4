from __future__ import annotations

from sqlalchemy import func, select, update
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
