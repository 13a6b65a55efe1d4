"""Users are global (one login, many tenants); tenant scoping lives on memberships. Emails are stored
in their canonical form (``domain.emails.canonical_email``) and compared exactly: the column has a
binary collation on MySQL, so the database never decides that two spellings are one user."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from replyflow.db.models import User
from replyflow.domain.emails import canonical_email


def normalize_email(email: str) -> str:
    return canonical_email(email)


def by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == canonical_email(email)))


def get(session: Session, user_id: str, *, for_update: bool = False) -> User | None:
    if not for_update:
        return session.get(User, user_id)
    return session.scalar(select(User).where(User.id == user_id).with_for_update())


def add(session: Session, *, email: str, name: str, password_hash: str) -> User:
    user = User(email=canonical_email(email), name=name, password_hash=password_hash)
    session.add(user)
    session.flush()
    return user


def set_password_hash(session: Session, user_id: str, password_hash: str) -> None:
    session.execute(update(User).where(User.id == user_id).values(password_hash=password_hash))
