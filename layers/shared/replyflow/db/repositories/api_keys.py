"""Tenant API keys. Only the prefix (looked up) and a SHA-256 of the secret are stored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from replyflow.db.models import ApiKey, Tenant


def resolve_by_prefix(session: Session, prefix: str) -> ApiKey | None:
    """Authorizer lookup: the prefix names the key (and so the tenant). Tenant-blind by necessity."""
    return session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))


def resolve_with_plan(session: Session, prefix: str) -> tuple[ApiKey, str | None] | None:
    """The authorizer's one read: the key by prefix and its tenant's plan code (None without a
    tenant row). Tenant-blind by necessity: the prefix is what names the tenant."""
    row = session.execute(
        select(ApiKey, Tenant.plan_code)
        .outerjoin(Tenant, Tenant.id == ApiKey.tenant_id)
        .where(ApiKey.prefix == prefix)
    ).first()
    return None if row is None else (row[0], row[1])


def add(
    session: Session, tenant_id: str, *, name: str, prefix: str, key_hash: str, role: str, created_by: str
) -> ApiKey:
    key = ApiKey(
        tenant_id=tenant_id, name=name, prefix=prefix, key_hash=key_hash, role=role, created_by=created_by
    )
    session.add(key)
    session.flush()
    return key


def get(session: Session, tenant_id: str, key_id: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.tenant_id == tenant_id, ApiKey.id == key_id))


def list_for_tenant(session: Session, tenant_id: str) -> list[ApiKey]:
    return list(
        session.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at))
    )


def revoke(session: Session, tenant_id: str, key_id: str, now: datetime) -> ApiKey | None:
    key = get(session, tenant_id, key_id)
    if key is not None and key.revoked_at is None:
        key.revoked_at = now
        session.flush()
    return key


def active_count(session: Session, tenant_id: str) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(ApiKey)
            .where(ApiKey.tenant_id == tenant_id, ApiKey.revoked_at.is_(None))
        )
        or 0
    )
