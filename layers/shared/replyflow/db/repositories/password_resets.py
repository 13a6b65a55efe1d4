"""Password reset tokens. Users are global, so these rows are too (no tenant id): a reset changes the
one password of the user and signs them out of every tenant."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from replyflow.db.models import PasswordResetToken


def add(session: Session, *, user_id: str, token_hash: str, now: datetime, expires_at: datetime) -> None:
    session.add(
        PasswordResetToken(user_id=user_id, token_hash=token_hash, created_at=now, expires_at=expires_at)
    )
    session.flush()


def resolve_by_hash(session: Session, token_hash: str) -> PasswordResetToken | None:
    query = select(PasswordResetToken).where(PasswordResetToken.token_hash == token_hash).with_for_update()
    return session.scalar(query)


def spend(session: Session, token_id: str, now: datetime) -> bool:
    """Single use: of two concurrent resets with one token exactly one wins."""
    result = session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.id == token_id, PasswordResetToken.used_at.is_(None))
        .values(used_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def spend_all_of_user(session: Session, user_id: str, now: datetime) -> None:
    """Only the newest link works; after a reset or a password change, none does."""
    session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.user_id == user_id, PasswordResetToken.used_at.is_(None))
        .values(used_at=now)
    )
