"""Users are global (one login, many tenants); tenant scoping lives on memberships. Emails are stored
lower-cased so the unique index is case-insensitive on every backend."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from replyflow.db.models import User


def normalize_email(email: str) -> str:
    return email.strip().lower()


def by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == normalize_email(email)))


def get(session: Session, user_id: str) -> User | None:
    return session.get(User, user_id)


def add(session: Session, *, email: str, name: str, password_hash: str) -> User:
    user = User(email=normalize_email(email), name=name, password_hash=password_hash)
    session.add(user)
    session.flush()
    return user
