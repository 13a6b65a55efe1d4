"""Writes of the pipeline's logs (the API owns the queries). ``automation_logs`` holds every decision
(matched, skipped with a reason, queued, deferred, parked, sent, failed); ``reply_logs`` every send
outcome. Both are appended in the caller's transaction, so a decision and its ledger change commit
together; so is the decision's count in ``daily_stats`` (the rollup ``GET /v1/stats`` reads)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from replyflow.clock import utcnow
from replyflow.db.models import AutomationLog, DailyStat, ReplyLog

MAX_DETAIL = 1000


@dataclass(frozen=True)
class Decision:
    """One ``automation_logs`` row of an event, before it is written."""

    automation_id: str | None
    action: str
    reason: str | None = None
    detail: str | None = None


def automation(
    session: Session,
    tenant_id: str,
    account_id: str,
    *,
    automation_id: str | None,
    event_key: str | None,
    action: str,
    reason: str | None = None,
    detail: str | None = None,
) -> None:
    automations(
        session,
        tenant_id,
        account_id,
        event_key=event_key,
        decisions=[Decision(automation_id, action, reason, detail)],
    )


@dataclass(frozen=True)
class EventDecisions:
    """The decisions of one event of a batch, for ``automations_of_events``."""

    tenant_id: str
    account_id: str
    event_key: str | None
    decisions: Sequence[Decision]


def automations(
    session: Session,
    tenant_id: str,
    account_id: str,
    *,
    event_key: str | None,
    decisions: Sequence[Decision],
) -> None:
    """The decisions of one event: one multi-row INSERT and one multi-row ``daily_stats`` upsert
    (two round trips however many decisions)."""
    automations_of_events(session, [EventDecisions(tenant_id, account_id, event_key, decisions)])


def automations_of_events(session: Session, events: Sequence[EventDecisions]) -> None:
    """The decisions of several events (one batch, one transaction): still two round trips. The
    ``daily_stats`` rows are upserted in one fixed order of their keys (no deadlock between two
    batches), one row per key however many decisions count in it."""
    if not any(e.decisions for e in events):
        return
    now = utcnow()
    rows = [
        {
            "tenant_id": e.tenant_id,
            "account_id": e.account_id,
            "automation_id": d.automation_id,
            "event_key": e.event_key[:255] if e.event_key else None,
            "action": d.action,
            "reason": d.reason,
            "detail": d.detail[:MAX_DETAIL] if d.detail else None,
            "created_at": now,
        }
        for e in events
        for d in e.decisions
    ]
    session.execute(_automation_insert(), rows)
    counts = Counter(
        (e.tenant_id, e.account_id, d.automation_id or "", d.action) for e in events for d in e.decisions
    )
    day = now.date()
    stats = [
        {
            "tenant_id": tenant_id,
            "day": day,
            "account_id": account_id,
            "automation_id": automation_id,
            "action": action,
            "count": n,
        }
        for (tenant_id, account_id, automation_id, action), n in sorted(counts.items())
    ]
    session.execute(_daily_stats_upsert(session.get_bind().dialect.name), stats)


# The statements are built once (on first use) and executed with a list of rows: the driver folds
# the executemany into one multi-row INSERT (PyMySQL; the sqlite3 module loops in C), and SQLAlchemy
# compiles each statement once instead of building a multi-VALUES statement per batch, whose shape
# (and cache key) changed with the number of rows. Core tables: no ORM bulk-insert machinery.
@cache
def _automation_insert() -> Any:
    return insert(cast("Table", AutomationLog.__table__))


@cache
def _reply_insert() -> Any:
    return insert(cast("Table", ReplyLog.__table__))


@cache
def _daily_stats_upsert(dialect: str) -> Any:
    """``daily_stats``' upsert adding each row's count to the stored one (``_upsert.upsert``'s
    statement, kept for executemany)."""
    table = cast("Table", DailyStat.__table__)
    if dialect in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        stmt = mysql_insert(table)
        return stmt.on_duplicate_key_update(count=table.c.count + stmt.inserted.count)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    lite = sqlite_insert(table)
    return lite.on_conflict_do_update(
        index_elements=["tenant_id", "day", "account_id", "automation_id", "action"],
        set_={"count": table.c.count + lite.excluded.count},
    )


@dataclass(frozen=True)
class Reply:
    """One ``reply_logs`` row, before it is written."""

    tenant_id: str
    account_id: str
    automation_id: str | None
    outbound_message_id: int | None
    kind: str
    status: str
    recipient_id: str | None = None
    comment_id: str | None = None
    text: str | None = None
    error_code: str | None = None
    detail: str | None = None


def reply(
    session: Session,
    tenant_id: str,
    account_id: str,
    *,
    automation_id: str | None,
    outbound_message_id: int | None,
    kind: str,
    status: str,
    recipient_id: str | None = None,
    comment_id: str | None = None,
    text: str | None = None,
    error_code: str | None = None,
    detail: str | None = None,
) -> None:
    replies(
        session,
        [
            Reply(
                tenant_id,
                account_id,
                automation_id,
                outbound_message_id,
                kind,
                status,
                recipient_id,
                comment_id,
                text,
                error_code,
                detail,
            )
        ],
    )


def replies(session: Session, rows: Sequence[Reply]) -> None:
    """Send outcomes' ``reply_logs`` rows in one INSERT (SQLAlchemy Core: no ORM objects)."""
    if not rows:
        return
    now = utcnow()
    session.execute(
        _reply_insert(),
        [
            {
                "tenant_id": r.tenant_id,
                "account_id": r.account_id,
                "automation_id": r.automation_id,
                "outbound_message_id": r.outbound_message_id,
                "kind": r.kind,
                "status": r.status,
                "recipient_id": r.recipient_id,
                "comment_id": r.comment_id,
                "text": r.text,
                "error_code": r.error_code,
                "detail": r.detail[:MAX_DETAIL] if r.detail else None,
                "created_at": now,
            }
            for r in rows
        ],
    )
