"""Tenant API keys. Only the prefix (looked up) and a SHA-256 of the secret are stored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from replyflow.db.models import ApiKey


def resolve_by_prefix(session: Session, prefix: str) -> ApiKey | None:
    """Authorizer lookup: the prefix names the key (and so the tenant). Tenant-blind by necessity."""
    return session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))


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
