"""Refresh tokens: stored as SHA-256 hashes, grouped in families (one per login).

Rotation is a conditional UPDATE (``rotated_at IS NULL``), so of two concurrent uses of one token
exactly one wins; the loser is treated as reuse.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from replyflow.db.models import RefreshToken


def resolve_by_hash(session: Session, token_hash: str) -> RefreshToken | None:
    """The token names its tenant; tenant-blind by necessity (the caller has no other credential)."""
    return session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))


def add(
    session: Session,
    tenant_id: str,
    *,
    user_id: str,
    family_id: str,
    token_hash: str,
    expires_at: datetime,
) -> RefreshToken:
    token = RefreshToken(
        tenant_id=tenant_id,
        user_id=user_id,
        family_id=family_id,
        token_hash=token_hash,
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    return token


def mark_rotated(session: Session, tenant_id: str, token_id: str, now: datetime) -> bool:
    result = session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.tenant_id == tenant_id,
            RefreshToken.id == token_id,
            RefreshToken.rotated_at.is_(None),
            RefreshToken.revoked_at.is_(None),
        )
        .values(rotated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def revoke_family(session: Session, tenant_id: str, family_id: str, now: datetime) -> None:
    session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.tenant_id == tenant_id,
            RefreshToken.family_id == family_id,
            RefreshToken.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )


def revoke_user(session: Session, tenant_id: str, user_id: str, now: datetime) -> None:
    session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.tenant_id == tenant_id,
            RefreshToken.user_id == user_id,
            RefreshToken.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )


def family_revoked(session: Session, tenant_id: str, family_id: str) -> bool:
    """True once the login session ended (logout, reuse, removal revoke every token of the family)."""
    found = session.scalar(
        select(RefreshToken.id)
        .where(
            RefreshToken.tenant_id == tenant_id,
            RefreshToken.family_id == family_id,
            RefreshToken.revoked_at.is_not(None),
        )
        .limit(1)
    )
    return found is not None


def revoke_every_tenant_of_user(session: Session, user_id: str, now: datetime) -> list[tuple[str, str]]:
    """A password change or reset: the user is global, so every session in every tenant ends. Returns
    the (tenant id, family id) of every session it ended, for the access-token deny-list."""
    live = RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None)
    ended = [
        (tenant_id, family_id)
        for tenant_id, family_id in session.execute(
            select(RefreshToken.tenant_id, RefreshToken.family_id).where(*live).distinct()
        )
    ]
    session.execute(update(RefreshToken).where(*live).values(revoked_at=now))
    return ended
