"""Contacts per account: the IGSID, username, the last time the user wrote (the 24 h DM window), the
last time they did anything (a comment too), and their custom fields and tags.

``touch`` is one upsert: concurrent events from a new contact cannot collide, and ``last_inbound_at``
and ``last_interaction_at`` only move forward (events arrive out of order,
docs/instagram.md#timestamps).

Fields (``contact_fields``) and tags (``contact_tags``) are rows keyed by (tenant, contact, key|tag),
written with one upsert each; their values are validated by ``domain.contact_fields`` before they get
here. Pages are keyset on the contact id, descending (newest contact first), one extra row fetched to
know whether another page exists; every filter is an indexed predicate led by ``tenant_id``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, delete, exists, func, select
from sqlalchemy.orm import Session

from replyflow.clock import utcnow
from replyflow.db.models import (
    AutomationLog,
    Contact,
    ContactField,
    ContactTag,
    FlowRun,
    FlowTimer,
    InboundEvent,
    OncePerPostClaim,
    OutboundMessage,
    ReplyLog,
)
from replyflow.db.repositories._upsert import greatest, insert_ignore, upsert
from replyflow.domain.contact_fields import FieldKind, FieldValue


def touch(
    session: Session,
    tenant_id: str,
    account_id: str,
    igsid: str,
    *,
    username: str | None,
    inbound_at: datetime | None,
    interaction_at: datetime | None = None,
) -> None:
    """Create or refresh the contact. ``inbound_at``: a DM-family event's time (the DM window);
    ``interaction_at``: any event's time (defaults to ``inbound_at``)."""
    touch_many(session, [Touch(tenant_id, account_id, igsid, username, inbound_at, interaction_at)])


@dataclass(frozen=True)
class Touch:
    """One contact's refresh for ``touch_many`` (the arguments of ``touch``)."""

    tenant_id: str
    account_id: str
    igsid: str
    username: str | None
    inbound_at: datetime | None
    interaction_at: datetime | None


def touch_many(session: Session, touches: Sequence[Touch]) -> None:
    """``touch`` for the contacts of a batch in one multi-row upsert, in one fixed order of their
    keys (no deadlock between two batches). A row without a time keeps the stored one (the same
    statement serves every row, so each time is merged with ``COALESCE`` both ways)."""
    if not touches:
        return
    now = utcnow()
    table = Contact.__table__
    biggest = greatest(session)

    def later(column: str) -> Callable[[Any], Any]:
        stored = table.c[column]
        return lambda new: biggest(func.coalesce(stored, new[column]), func.coalesce(new[column], stored))

    upsert(
        session,
        table,  # type: ignore[arg-type]
        [
            {
                "tenant_id": t.tenant_id,
                "account_id": t.account_id,
                "igsid": t.igsid,
                "username": t.username,
                "last_inbound_at": t.inbound_at,
                "last_interaction_at": t.interaction_at or t.inbound_at,
                "created_at": now,
                "updated_at": now,
            }
            for t in sorted(touches, key=lambda t: (t.tenant_id, t.account_id, t.igsid))
        ],
        conflict=["tenant_id", "account_id", "igsid"],
        update={
            "updated_at": lambda new: new.updated_at,
            "username": lambda new: func.coalesce(new.username, table.c.username),
            "last_inbound_at": later("last_inbound_at"),
            "last_interaction_at": later("last_interaction_at"),
        },
    )


def find(session: Session, tenant_id: str, account_id: str, igsid: str) -> Contact | None:
    return session.scalar(
        select(Contact).where(
            Contact.tenant_id == tenant_id, Contact.account_id == account_id, Contact.igsid == igsid
        )
    )


def claim_first_seen(session: Session, tenant_id: str, account_id: str, igsid: str) -> bool:
    """Insert the contact if absent; True only in the one transaction whose INSERT created the row.

    "New contacts only" rests on this, not on a read: two first events of one person processed at
    once would both read "absent" (neither sees the other's uncommitted row). Both reach this INSERT
    instead; the unique key makes the second wait for the first transaction, then find the row (the
    first committed: not new) or insert it (the first rolled back: new). ``touch`` then fills it in.
    With three or more at once, InnoDB may choose one of the waiters as a deadlock victim (they
    share the lock that found the row): that event fails and is retried, and finds the contact.
    """
    now = utcnow()
    values = {
        "tenant_id": tenant_id,
        "account_id": account_id,
        "igsid": igsid,
        "created_at": now,
        "updated_at": now,
    }
    return insert_ignore(session, Contact.__table__, values)  # type: ignore[arg-type]


def last_inbound_at(session: Session, tenant_id: str, account_id: str, igsid: str) -> datetime | None:
    return session.scalar(
        select(Contact.last_inbound_at).where(
            Contact.tenant_id == tenant_id, Contact.account_id == account_id, Contact.igsid == igsid
        )
    )


# -- one contact, with its fields and tags ----------------------------------------------------------


@dataclass(frozen=True)
class ContactRecord:
    contact: Contact
    fields: dict[str, FieldValue]
    tags: tuple[str, ...]


def get(session: Session, tenant_id: str, contact_id: int) -> ContactRecord | None:
    contact = session.scalar(select(Contact).where(Contact.tenant_id == tenant_id, Contact.id == contact_id))
    if contact is None:
        return None
    return ContactRecord(
        contact,
        fields_of(session, tenant_id, [contact.id]).get(contact.id, {}),
        tuple(tags_of(session, tenant_id, [contact.id]).get(contact.id, ())),
    )


def fields_of(
    session: Session, tenant_id: str, contact_ids: Sequence[int]
) -> dict[int, dict[str, FieldValue]]:
    found: dict[int, dict[str, FieldValue]] = {}
    if not contact_ids:
        return found
    rows = session.execute(
        select(ContactField.contact_id, ContactField.key, ContactField.kind, ContactField.value)
        .where(ContactField.tenant_id == tenant_id, ContactField.contact_id.in_(list(contact_ids)))
        .order_by(ContactField.contact_id, ContactField.key)
    )
    for contact_id, key, kind, value in rows:
        found.setdefault(int(contact_id), {})[str(key)] = FieldValue(cast("FieldKind", kind), str(value))
    return found


def tags_of(session: Session, tenant_id: str, contact_ids: Sequence[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    if not contact_ids:
        return found
    rows = session.execute(
        select(ContactTag.contact_id, ContactTag.tag)
        .where(ContactTag.tenant_id == tenant_id, ContactTag.contact_id.in_(list(contact_ids)))
        .order_by(ContactTag.contact_id, ContactTag.tag)
    )
    for contact_id, tag in rows:
        found.setdefault(int(contact_id), []).append(str(tag))
    return found


def set_field(
    session: Session, tenant_id: str, contact_id: int, key: str, value: FieldValue, *, now: datetime
) -> None:
    """Set (or replace) one field; ``value`` comes from ``domain.contact_fields.parse_field``."""
    upsert(
        session,
        ContactField.__table__,  # type: ignore[arg-type]
        {
            "tenant_id": tenant_id,
            "contact_id": contact_id,
            "key": key,
            "kind": value.kind,
            "value": value.text,
            "updated_at": now,
        },
        conflict=["tenant_id", "contact_id", "key"],
        update={
            "kind": lambda new: new.kind,
            "value": lambda new: new.value,
            "updated_at": lambda new: new.updated_at,
        },
    )


def unset_field(session: Session, tenant_id: str, contact_id: int, key: str) -> bool:
    result = session.execute(
        delete(ContactField).where(
            ContactField.tenant_id == tenant_id,
            ContactField.contact_id == contact_id,
            ContactField.key == key,
        )
    )
    return _count(result) > 0


def add_tag(session: Session, tenant_id: str, contact_id: int, tag: str, *, now: datetime) -> None:
    """Tag the contact (a tag it already has stays as it was)."""
    upsert(
        session,
        ContactTag.__table__,  # type: ignore[arg-type]
        {"tenant_id": tenant_id, "contact_id": contact_id, "tag": tag, "created_at": now},
        conflict=["tenant_id", "contact_id", "tag"],
        update={"created_at": lambda _new: ContactTag.__table__.c.created_at},
    )


def remove_tag(session: Session, tenant_id: str, contact_id: int, tag: str) -> bool:
    result = session.execute(
        delete(ContactTag).where(
            ContactTag.tenant_id == tenant_id, ContactTag.contact_id == contact_id, ContactTag.tag == tag
        )
    )
    return _count(result) > 0


def has_tag(session: Session, tenant_id: str, contact_id: int, tag: str) -> bool:
    found = session.scalar(
        select(ContactTag.tag).where(
            ContactTag.tenant_id == tenant_id, ContactTag.contact_id == contact_id, ContactTag.tag == tag
        )
    )
    return found is not None


def field_keys(session: Session, tenant_id: str, limit: int) -> list[str]:
    """The field names the tenant's contacts use (the export's columns), at most ``limit``."""
    rows = session.scalars(
        select(ContactField.key)
        .where(ContactField.tenant_id == tenant_id)
        .distinct()
        .order_by(ContactField.key)
        .limit(limit)
    )
    return [str(k) for k in rows]


def counts(session: Session, tenant_id: str, contact_id: int) -> tuple[int, int]:
    """(fields, tags) the contact holds, for the per-contact limits."""
    fields = session.scalar(
        select(func.count())
        .select_from(ContactField)
        .where(ContactField.tenant_id == tenant_id, ContactField.contact_id == contact_id)
    )
    tags = session.scalar(
        select(func.count())
        .select_from(ContactTag)
        .where(ContactTag.tenant_id == tenant_id, ContactTag.contact_id == contact_id)
    )
    return int(fields or 0), int(tags or 0)


# -- lists ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactFilters:
    """Every filter is ANDed; ``tags`` all must be present; ``fields_equal`` values are canonical texts
    (``FieldValue.text``); ``username`` is a case-insensitive substring; interaction bounds are
    ``>= after`` and ``< before``; ``contact_ids`` restricts to a set another query found (a flow's
    runs)."""

    account_id: str | None = None
    tags: tuple[str, ...] = ()
    fields_present: tuple[str, ...] = ()
    fields_equal: tuple[tuple[str, str], ...] = ()
    interacted_after: datetime | None = None
    interacted_before: datetime | None = None
    username: str | None = None
    flow_id: str | None = None  # contacts with a run (any status) of this flow
    contact_ids: frozenset[int] | None = field(default=None)


def _conditions(tenant_id: str, filters: ContactFilters) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [Contact.tenant_id == tenant_id]
    if filters.account_id is not None:
        where.append(Contact.account_id == filters.account_id)
    for tag in filters.tags:
        where.append(
            exists().where(
                ContactTag.tenant_id == tenant_id, ContactTag.tag == tag, ContactTag.contact_id == Contact.id
            )
        )
    for key in filters.fields_present:
        where.append(
            exists().where(
                ContactField.tenant_id == tenant_id,
                ContactField.key == key,
                ContactField.contact_id == Contact.id,
            )
        )
    for key, text in filters.fields_equal:
        where.append(
            exists().where(
                ContactField.tenant_id == tenant_id,
                ContactField.key == key,
                ContactField.value == text,
                ContactField.contact_id == Contact.id,
            )
        )
    if filters.interacted_after is not None:
        where.append(Contact.last_interaction_at >= filters.interacted_after)
    if filters.interacted_before is not None:
        where.append(Contact.last_interaction_at < filters.interacted_before)
    if filters.username:
        pattern = "%" + _escape_like(filters.username.lower()) + "%"
        # "/" rather than a backslash, which MySQL string literals treat as an escape of their own.
        where.append(func.lower(Contact.username).like(pattern, escape="/"))
    if filters.flow_id is not None:
        where.append(
            exists().where(
                FlowRun.tenant_id == tenant_id,
                FlowRun.account_id == Contact.account_id,
                FlowRun.contact_igsid == Contact.igsid,
                FlowRun.flow_id == filters.flow_id,
            )
        )
    if filters.contact_ids is not None:
        where.append(Contact.id.in_(sorted(filters.contact_ids)))
    return where


def page(
    session: Session, tenant_id: str, filters: ContactFilters, cursor: int | None, limit: int
) -> tuple[list[Contact], int | None]:
    """One page of contacts, newest first, and the cursor of the next page (None: the last page)."""
    if filters.contact_ids is not None and not filters.contact_ids:
        return [], None
    query = select(Contact).where(*_conditions(tenant_id, filters))
    if cursor is not None:
        query = query.where(Contact.id < cursor)
    rows = list(session.scalars(query.order_by(Contact.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


def _escape_like(text: str) -> str:
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


# -- the timeline -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    type: str  # inbound / send / flow_run
    kind: str
    status: str | None
    detail: dict[str, Any]


def timeline(session: Session, tenant_id: str, contact: Contact, limit: int) -> list[TimelineEntry]:
    """The contact's latest inbound events and sends, newest first, at most ``limit``."""
    events = session.execute(
        select(InboundEvent.kind, InboundEvent.event_key, InboundEvent.occurred_at, InboundEvent.received_at)
        .where(
            InboundEvent.tenant_id == tenant_id,
            InboundEvent.account_id == contact.account_id,
            InboundEvent.sender_id == contact.igsid,
        )
        .order_by(InboundEvent.id.desc())
        .limit(limit)
    )
    entries = [
        TimelineEntry(occurred or received, "inbound", str(kind), None, {"event_key": key})
        for kind, key, occurred, received in events
    ]
    sends = session.execute(
        select(
            OutboundMessage.kind,
            OutboundMessage.status,
            OutboundMessage.automation_id,
            OutboundMessage.error_code,
            OutboundMessage.created_at,
            OutboundMessage.sent_at,
        )
        .where(
            OutboundMessage.tenant_id == tenant_id,
            OutboundMessage.account_id == contact.account_id,
            OutboundMessage.recipient_id == contact.igsid,
        )
        .order_by(OutboundMessage.id.desc())
        .limit(limit)
    )
    entries += [
        TimelineEntry(
            sent_at or created,
            "send",
            str(kind),
            str(status),
            {"automation_id": automation_id, "error_code": error_code},
        )
        for kind, status, automation_id, error_code, created, sent_at in sends
    ]
    runs = session.execute(
        select(
            FlowRun.flow_id,
            FlowRun.version,
            FlowRun.status,
            FlowRun.step_id,
            FlowRun.end_reason,
            FlowRun.updated_at,
        )
        .where(
            FlowRun.tenant_id == tenant_id,
            FlowRun.account_id == contact.account_id,
            FlowRun.contact_igsid == contact.igsid,
        )
        .order_by(FlowRun.updated_at.desc())
        .limit(limit)
    )
    entries += [
        TimelineEntry(
            updated,
            "flow_run",
            "flow",
            str(status),
            {"flow_id": flow_id, "version": version, "step_id": step_id, "end_reason": end_reason},
        )
        for flow_id, version, status, step_id, end_reason, updated in runs
    ]
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries[:limit]


# -- personal data ----------------------------------------------------------------------------------


def delete_personal_data(session: Session, tenant_id: str, contact_id: int) -> Counter[str]:
    """Deletes the contact and every row about them in their account (:func:`delete_person_rows`).
    Empty if no such contact."""
    contact = session.scalar(select(Contact).where(Contact.tenant_id == tenant_id, Contact.id == contact_id))
    if contact is None:
        return Counter()
    return delete_person_rows(
        session, tenant_id, contact.igsid, account_ids=[contact.account_id], contact_ids=[contact_id]
    )


def delete_person_rows(
    session: Session,
    tenant_id: str,
    igsid: str,
    *,
    account_ids: Iterable[str],
    contact_ids: Iterable[int],
) -> Counter[str]:
    """Deletes one Instagram user's rows in these accounts of the tenant: the inbound events they sent
    and the events of the sends to them, with those events' automation decisions, the sends and the
    reply logs to them; then the contacts ``contact_ids`` with what hangs off them
    (:func:`delete_contact_rows`). ``daily_stats`` keep their counts, which name nobody. A person's
    deletion from the console and Meta's data deletion callback both go through here."""
    counts_: Counter[str] = Counter()
    for account_id in sorted(set(account_ids)):
        counts_.update(_delete_person_in_account(session, tenant_id, account_id, igsid))
    ids = sorted(set(contact_ids))
    counts_.update(delete_contact_rows(session, tenant_id, ids, igsids=[igsid]))
    for chunk in _chunks(ids):
        counts_["contacts"] += _count(
            session.execute(delete(Contact).where(Contact.tenant_id == tenant_id, Contact.id.in_(chunk)))
        )
    return +counts_


def _delete_person_in_account(session: Session, tenant_id: str, account_id: str, igsid: str) -> Counter[str]:
    counts_: Counter[str] = Counter()
    for chunk in _chunks(sorted(_event_keys_of_person(session, tenant_id, account_id, igsid))):
        counts_["automation_logs"] += _count(
            session.execute(
                delete(AutomationLog).where(
                    AutomationLog.tenant_id == tenant_id,
                    AutomationLog.account_id == account_id,
                    AutomationLog.event_key.in_(chunk),
                )
            )
        )
        counts_["inbound_events"] += _count(
            session.execute(
                delete(InboundEvent).where(
                    InboundEvent.tenant_id == tenant_id,
                    InboundEvent.account_id == account_id,
                    InboundEvent.event_key.in_(chunk),
                )
            )
        )
    counts_["outbound_messages"] += _count(
        session.execute(
            delete(OutboundMessage).where(
                OutboundMessage.tenant_id == tenant_id,
                OutboundMessage.account_id == account_id,
                OutboundMessage.recipient_id == igsid,
            )
        )
    )
    counts_["reply_logs"] += _count(
        session.execute(
            delete(ReplyLog).where(
                ReplyLog.tenant_id == tenant_id,
                ReplyLog.account_id == account_id,
                ReplyLog.recipient_id == igsid,
            )
        )
    )
    return counts_


def _event_keys_of_person(session: Session, tenant_id: str, account_id: str, igsid: str) -> set[str]:
    """The keys of the events they sent and of the events behind the sends to them."""
    sent_to = session.scalars(
        select(OutboundMessage.event_key).where(
            OutboundMessage.tenant_id == tenant_id,
            OutboundMessage.account_id == account_id,
            OutboundMessage.recipient_id == igsid,
            OutboundMessage.event_key.is_not(None),
        )
    )
    sent_by = session.scalars(
        select(InboundEvent.event_key).where(
            InboundEvent.tenant_id == tenant_id,
            InboundEvent.account_id == account_id,
            InboundEvent.sender_id == igsid,
        )
    )
    return {str(k) for k in sent_to} | {str(k) for k in sent_by}


def delete_contact_rows(
    session: Session, tenant_id: str, contact_ids: Iterable[int], *, igsids: Iterable[str] = ()
) -> Counter[str]:
    """The rows that hang off contacts: their fields and tags (by contact id), and the flow runs (with
    their timers) and once-per-post claims naming ``igsids`` in the tenant. Retention and Meta's data
    deletion call it with the contacts they drop."""
    counts_: Counter[str] = Counter()
    for chunk in _chunks(sorted(set(contact_ids))):
        counts_["contact_fields"] += _count(
            session.execute(
                delete(ContactField).where(
                    ContactField.tenant_id == tenant_id, ContactField.contact_id.in_(chunk)
                )
            )
        )
        counts_["contact_tags"] += _count(
            session.execute(
                delete(ContactTag).where(ContactTag.tenant_id == tenant_id, ContactTag.contact_id.in_(chunk))
            )
        )
    for igsid_chunk in _chunks(sorted(set(igsids))):
        run_ids = list(
            session.scalars(
                select(FlowRun.id).where(
                    FlowRun.tenant_id == tenant_id, FlowRun.contact_igsid.in_(igsid_chunk)
                )
            )
        )
        for run_chunk in _chunks(run_ids):
            counts_["flow_timers"] += _count(
                session.execute(
                    delete(FlowTimer).where(FlowTimer.tenant_id == tenant_id, FlowTimer.run_id.in_(run_chunk))
                )
            )
            counts_["flow_runs"] += _count(
                session.execute(
                    delete(FlowRun).where(FlowRun.tenant_id == tenant_id, FlowRun.id.in_(run_chunk))
                )
            )
        counts_["once_per_post_claims"] += _count(
            session.execute(
                delete(OncePerPostClaim).where(
                    OncePerPostClaim.tenant_id == tenant_id, OncePerPostClaim.igsid.in_(igsid_chunk)
                )
            )
        )
    return counts_


def delete_orphan_rows(session: Session, tenant_id: str, contact_ids: Sequence[int]) -> Counter[str]:
    """Fields and tags of these contact ids whose contact is gone (retention pruned it)."""
    present = set(
        int(i)
        for i in session.scalars(
            select(Contact.id).where(Contact.tenant_id == tenant_id, Contact.id.in_(list(contact_ids)))
        )
    )
    return delete_contact_rows(session, tenant_id, [i for i in contact_ids if i not in present])


def ids_of_igsid(session: Session, tenant_id: str, igsid: str) -> list[int]:
    return [
        int(i)
        for i in session.scalars(
            select(Contact.id).where(Contact.tenant_id == tenant_id, Contact.igsid == igsid)
        )
    ]


def _count(result: Any) -> int:
    return int(cast("CursorResult[Any]", result).rowcount or 0)


def _chunks(values: list[Any], size: int = 500) -> list[list[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]
