"""Claims of the "once per person per post" matching option: one row per (automation, post, person),
taken in the processor's transaction by an INSERT against the unique key, so two comments of one
person on one post (or two workers on them) never both win."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from replyflow.db.engine import is_duplicate_key
from replyflow.db.models import OncePerPostClaim


def claim(
    session: Session,
    tenant_id: str,
    automation_id: str,
    media_id: str,
    igsid: str,
    *,
    event_key: str | None,
    now: datetime,
) -> bool:
    """Take the claim; False when this person already had one for this automation on this post."""
    try:
        with session.begin_nested():
            session.add(
                OncePerPostClaim(
                    tenant_id=tenant_id,
                    automation_id=automation_id,
                    media_id=media_id[:64],
                    igsid=igsid[:64],
                    event_key=event_key[:255] if event_key else None,
                    created_at=now,
                )
            )
    except IntegrityError as exc:
        if is_duplicate_key(exc):
            return False
        raise
    return True


def claimed(session: Session, tenant_id: str, automation_id: str, media_id: str, igsid: str) -> bool:
    found = session.scalar(
        select(OncePerPostClaim.id).where(
            OncePerPostClaim.tenant_id == tenant_id,
            OncePerPostClaim.automation_id == automation_id,
            OncePerPostClaim.media_id == media_id,
            OncePerPostClaim.igsid == igsid,
        )
    )
    return found is not None
