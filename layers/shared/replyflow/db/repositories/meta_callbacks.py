"""SQL of Meta's data deletion and deauthorize callbacks.

The callbacks name an Instagram user, not a tenant, so finding where the user appears is tenant-blind
by necessity (``*_tenants``, on the igsid / recipient / ig_user_id indexes); every change after that
is one statement per tenant with the tenant id in its ``WHERE``.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session

from replyflow.db.models import (
    Automation,
    AutomationLog,
    Contact,
    DataDeletionRequest,
    InboundEvent,
    InstagramAccount,
    OutboundMessage,
    ReplyLog,
)
from replyflow.db.repositories import contacts as contacts_repo

# Sends that have not happened yet; a deauthorized account settles them.
PENDING_SEND_STATUSES = ("queued", "deferred", "parked")


def _count(result: Any) -> int:
    return int(cast("CursorResult[Any]", result).rowcount or 0)


def accounts_of_user(session: Session, ig_user_id: str) -> list[tuple[str, str]]:
    """(tenant_id, account_id) of the connected accounts that are this Instagram user."""
    rows = session.execute(
        select(InstagramAccount.tenant_id, InstagramAccount.id).where(
            InstagramAccount.ig_user_id == ig_user_id
        )
    )
    return [(str(t), str(a)) for t, a in rows]


def tenants_naming_user(session: Session, igsid: str) -> set[str]:
    """Tenants with a contact, a send or a reply log that names this Instagram user."""
    found: set[str] = set()
    for column, key in (
        (Contact.tenant_id, Contact.igsid),
        (OutboundMessage.tenant_id, OutboundMessage.recipient_id),
        (ReplyLog.tenant_id, ReplyLog.recipient_id),
    ):
        found.update(str(t) for t in session.scalars(select(column).where(key == igsid).distinct()))
    return found


def delete_rows_naming_user(session: Session, tenant_id: str, igsid: str) -> Counter[str]:
    """Deletes one tenant's rows about this user as a contact: the contact, the sends to the user, the
    inbound events and automation decisions of those sends' events, and the reply logs to the user."""
    counts: Counter[str] = Counter()
    sends = session.execute(
        select(OutboundMessage.account_id, OutboundMessage.event_key).where(
            OutboundMessage.tenant_id == tenant_id, OutboundMessage.recipient_id == igsid
        )
    ).all()
    keys: dict[str, set[str]] = {}
    for account_id, event_key in sends:
        if event_key:
            keys.setdefault(str(account_id), set()).add(str(event_key))
    for account_id, event_keys in keys.items():
        for chunk in _chunks(sorted(event_keys)):
            counts["inbound_events"] += _count(
                session.execute(
                    delete(InboundEvent).where(
                        InboundEvent.tenant_id == tenant_id,
                        InboundEvent.account_id == account_id,
                        InboundEvent.event_key.in_(chunk),
                    )
                )
            )
            counts["automation_logs"] += _count(
                session.execute(
                    delete(AutomationLog).where(
                        AutomationLog.tenant_id == tenant_id,
                        AutomationLog.account_id == account_id,
                        AutomationLog.event_key.in_(chunk),
                    )
                )
            )
    counts["outbound_messages"] += _count(
        session.execute(
            delete(OutboundMessage).where(
                OutboundMessage.tenant_id == tenant_id, OutboundMessage.recipient_id == igsid
            )
        )
    )
    counts["reply_logs"] += _count(
        session.execute(
            delete(ReplyLog).where(ReplyLog.tenant_id == tenant_id, ReplyLog.recipient_id == igsid)
        )
    )
    counts["inbound_events"] += _count(
        session.execute(
            delete(InboundEvent).where(
                InboundEvent.tenant_id == tenant_id,
                InboundEvent.account_id.in_(_accounts_of_tenant(session, tenant_id)),
                InboundEvent.sender_id == igsid,
            )
        )
    )
    counts.update(
        contacts_repo.delete_contact_rows(
            session, tenant_id, contacts_repo.ids_of_igsid(session, tenant_id, igsid), igsids=[igsid]
        )
    )
    counts["contacts"] += _count(
        session.execute(delete(Contact).where(Contact.tenant_id == tenant_id, Contact.igsid == igsid))
    )
    return counts


def _accounts_of_tenant(session: Session, tenant_id: str) -> list[str]:
    return [
        str(a)
        for a in session.scalars(select(InstagramAccount.id).where(InstagramAccount.tenant_id == tenant_id))
    ]


def delete_account_data(session: Session, tenant_id: str, account_id: str) -> Counter[str]:
    """Deletes everything one connected account's automation recorded (the account row stays,
    disconnected, for the tenant's plan counts; ``daily_stats`` keep their counts, which name nobody)."""
    counts: Counter[str] = Counter()
    for name, model in (
        ("inbound_events", InboundEvent),
        ("outbound_messages", OutboundMessage),
        ("reply_logs", ReplyLog),
        ("automation_logs", AutomationLog),
    ):
        counts[name] += _count(
            session.execute(delete(model).where(model.tenant_id == tenant_id, model.account_id == account_id))
        )
    contacts = session.execute(
        select(Contact.id, Contact.igsid).where(
            Contact.tenant_id == tenant_id, Contact.account_id == account_id
        )
    ).all()
    counts.update(
        contacts_repo.delete_contact_rows(
            session, tenant_id, [int(i) for i, _ in contacts], igsids=[str(g) for _, g in contacts]
        )
    )
    counts["contacts"] += _count(
        session.execute(
            delete(Contact).where(Contact.tenant_id == tenant_id, Contact.account_id == account_id)
        )
    )
    return counts


def disconnect_account(
    session: Session, tenant_id: str, account_id: str, *, reason: str, error_code: str, now: datetime
) -> int:
    """The account is disconnected (``disabled``, ``reason``), its token wiped, its automations paused,
    and its sends that had not happened settled ``skipped`` with ``error_code``. The number settled."""
    session.execute(
        update(InstagramAccount)
        .where(InstagramAccount.tenant_id == tenant_id, InstagramAccount.id == account_id)
        .values(
            status="disabled",
            status_reason=reason,
            access_token_encrypted=b"",
            token_issued_at=None,
            token_expires_at=None,
            webhook_subscribed_at=None,
            updated_at=now,
        )
    )
    session.execute(
        update(Automation)
        .where(Automation.tenant_id == tenant_id, Automation.account_id == account_id)
        .values(active=False, updated_at=now)
    )
    return _count(
        session.execute(
            update(OutboundMessage)
            .where(
                OutboundMessage.tenant_id == tenant_id,
                OutboundMessage.account_id == account_id,
                OutboundMessage.status.in_(PENDING_SEND_STATUSES),
            )
            .values(status="skipped", error_code=error_code, updated_at=now)
        )
    )


def record_deletion(
    session: Session, *, code: str, user_hash: str, rows_deleted: int, now: datetime
) -> DataDeletionRequest:
    row = DataDeletionRequest(
        confirmation_code=code,
        user_hash=user_hash,
        status="completed",
        rows_deleted=rows_deleted,
        requested_at=now,
        completed_at=now,
    )
    session.add(row)
    session.flush()
    return row


def deletion_by_code(session: Session, code: str) -> DataDeletionRequest | None:
    return session.scalar(select(DataDeletionRequest).where(DataDeletionRequest.confirmation_code == code))


def _chunks(values: list[str], size: int = 500) -> list[list[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)]
