"""Invitations: tenant-scoped, except the lookup by token hash, which is how an invitee (who has no
other credential for the tenant yet) names the row; the row then names its tenant."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from replyflow.db.models import Invitation


def add(
    session: Session,
    tenant_id: str,
    *,
    email: str,
    role: str,
    token_hash: str,
    invited_by: str | None,
    now: datetime,
    expires_at: datetime,
) -> Invitation:
    invitation = Invitation(
        tenant_id=tenant_id,
        email=email,
        role=role,
        token_hash=token_hash,
        invited_by=invited_by,
        created_at=now,
        sent_at=now,
        expires_at=expires_at,
    )
    session.add(invitation)
    session.flush()
    return invitation


def get(
    session: Session, tenant_id: str, invitation_id: str, *, for_update: bool = False
) -> Invitation | None:
    query = select(Invitation).where(Invitation.tenant_id == tenant_id, Invitation.id == invitation_id)
    if for_update:
        query = query.with_for_update()
    return session.scalar(query)


def resolve_by_hash(session: Session, token_hash: str) -> Invitation | None:
    """Tenant-blind by necessity; locks the row, so two accepts of one invitation run one at a time."""
    return session.scalar(select(Invitation).where(Invitation.token_hash == token_hash).with_for_update())


def pending(session: Session, tenant_id: str, now: datetime, *, email: str | None = None) -> list[Invitation]:
    query = select(Invitation).where(
        Invitation.tenant_id == tenant_id,
        Invitation.accepted_at.is_(None),
        Invitation.revoked_at.is_(None),
        Invitation.expires_at > now,
    )
    if email is not None:
        query = query.where(Invitation.email == email)
    return list(session.scalars(query.order_by(Invitation.created_at, Invitation.id)))


def mark_accepted(session: Session, tenant_id: str, invitation_id: str, user_id: str, now: datetime) -> bool:
    """Single use: a conditional UPDATE, so of two concurrent accepts exactly one wins."""
    result = session.execute(
        update(Invitation)
        .where(
            Invitation.tenant_id == tenant_id,
            Invitation.id == invitation_id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
        .values(accepted_at=now, accepted_by=user_id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
