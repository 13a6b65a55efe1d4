"""Contacts per account: the IGSID, username and the last time the user wrote (the 24 h DM window).

``touch`` is one upsert: concurrent events from a new contact cannot collide, and ``last_inbound_at``
only moves forward (events arrive out of order, docs/instagram.md#timestamps)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from replyflow.clock import utcnow
from replyflow.db.models import Contact
from replyflow.db.repositories._upsert import greatest, upsert


def touch(
    session: Session,
    tenant_id: str,
    account_id: str,
    igsid: str,
    *,
    username: str | None,
    inbound_at: datetime | None,
) -> None:
    now = utcnow()
    table = Contact.__table__
    biggest = greatest(session)
    update = {
        "updated_at": lambda new: new.updated_at,
        "username": lambda new: func.coalesce(new.username, table.c.username),
    }
    if inbound_at is not None:
        update["last_inbound_at"] = lambda new: biggest(
            func.coalesce(table.c.last_inbound_at, new.last_inbound_at), new.last_inbound_at
        )
    upsert(
        session,
        table,  # type: ignore[arg-type]
        {
            "tenant_id": tenant_id,
            "account_id": account_id,
            "igsid": igsid,
            "username": username,
            "last_inbound_at": inbound_at,
            "created_at": now,
            "updated_at": now,
        },
        conflict=["tenant_id", "account_id", "igsid"],
        update=update,
    )


def get(session: Session, tenant_id: str, account_id: str, igsid: str) -> Contact | None:
    return session.scalar(
        select(Contact).where(
            Contact.tenant_id == tenant_id, Contact.account_id == account_id, Contact.igsid == igsid
        )
    )


def last_inbound_at(session: Session, tenant_id: str, account_id: str, igsid: str) -> datetime | None:
    return session.scalar(
        select(Contact.last_inbound_at).where(
            Contact.tenant_id == tenant_id, Contact.account_id == account_id, Contact.igsid == igsid
        )
    )
