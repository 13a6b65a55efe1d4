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
    ArchiveFile,
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

STATUS_PENDING = "pending"
STATUS_COMPLETED = "completed"

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
    """Deletes one tenant's rows about this user as a contact, in every account of the tenant (and
    any account a send or a reply log to them still names): ``contacts.delete_person_rows``."""
    accounts = set(_accounts_of_tenant(session, tenant_id))
    for column, key, tenant in (
        (OutboundMessage.account_id, OutboundMessage.recipient_id, OutboundMessage.tenant_id),
        (ReplyLog.account_id, ReplyLog.recipient_id, ReplyLog.tenant_id),
    ):
        accounts.update(
            str(a)
            for a in session.scalars(select(column).where(tenant == tenant_id, key == igsid).distinct())
        )
    return contacts_repo.delete_person_rows(
        session,
        tenant_id,
        igsid,
        account_ids=accounts,
        contact_ids=contacts_repo.ids_of_igsid(session, tenant_id, igsid),
    )


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
    session: Session, *, code: str, user_hash: str, rows_deleted: int, now: datetime, pending: bool = False
) -> DataDeletionRequest:
    """``pending``: archived objects may still hold the user (the archive job erases them, then
    completes the request)."""
    row = DataDeletionRequest(
        confirmation_code=code,
        user_hash=user_hash,
        status=STATUS_PENDING if pending else STATUS_COMPLETED,
        rows_deleted=rows_deleted,
        requested_at=now,
        completed_at=None if pending else now,
    )
    session.add(row)
    session.flush()
    return row


def deletion_by_code(session: Session, code: str) -> DataDeletionRequest | None:
    return session.scalar(select(DataDeletionRequest).where(DataDeletionRequest.confirmation_code == code))


def any_archive_files(session: Session) -> bool:
    """Whether any tenant has archived objects (which a deletion must then reach)."""
    return session.scalar(select(ArchiveFile.id).limit(1)) is not None


def pending_deletions(session: Session) -> list[tuple[int, str]]:
    """``(id, user_hash)`` of the deletions whose archived objects are still to be erased."""
    rows = session.execute(
        select(DataDeletionRequest.id, DataDeletionRequest.user_hash)
        .where(DataDeletionRequest.status == STATUS_PENDING)
        .order_by(DataDeletionRequest.id)
    )
    return [(int(i), str(h)) for i, h in rows]


def complete_deletions(session: Session, ids: list[int], *, now: datetime) -> None:
    session.execute(
        update(DataDeletionRequest)
        .where(DataDeletionRequest.id.in_(ids), DataDeletionRequest.status == STATUS_PENDING)
        .values(status=STATUS_COMPLETED, completed_at=now)
    )


def account_users(session: Session) -> list[tuple[str, str, str]]:
    """``(tenant_id, account_id, ig_user_id)`` of every account, connected or not (tenant-blind: a
    deletion names only the user's hash)."""
    rows = session.execute(
        select(InstagramAccount.tenant_id, InstagramAccount.id, InstagramAccount.ig_user_id)
    )
    return [(str(t), str(a), str(u)) for t, a, u in rows]
