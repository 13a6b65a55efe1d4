"""Idempotency keys. The primary key (tenant, scope, key) is the reservation: inserting the row in its own
committed transaction is what makes one request, and only one, the owner of a key."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from replyflow.db.engine import is_duplicate_key
from replyflow.db.models import IdempotencyKey


def reserve(session: Session, tenant_id: str, scope: str, key: str, request_hash: str) -> bool:
    """True when this call inserted the key; False when it already existed. Commits."""
    session.add(
        IdempotencyKey(
            tenant_id=tenant_id, scope=scope, key=key, request_hash=request_hash, status="in_progress"
        )
    )
    try:
        session.commit()
    except IntegrityError as error:
        session.rollback()
        if is_duplicate_key(error):
            return False
        raise
    return True


def get(session: Session, tenant_id: str, scope: str, key: str) -> IdempotencyKey | None:
    return session.scalar(
        select(IdempotencyKey)
        .where(
            IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.scope == scope, IdempotencyKey.key == key
        )
        .execution_options(populate_existing=True)
    )


def complete(session: Session, tenant_id: str, scope: str, key: str, status: int, body: Any) -> None:
    row = get(session, tenant_id, scope, key)
    if row is not None:
        row.status = "done"
        row.response_status = status
        row.response_body = body
        session.flush()


def release(session: Session, tenant_id: str, scope: str, key: str) -> None:
    """Drop an in-progress reservation after an unexpected failure so the client can retry."""
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.tenant_id == tenant_id,
            IdempotencyKey.scope == scope,
            IdempotencyKey.key == key,
            IdempotencyKey.status == "in_progress",
        )
    )
