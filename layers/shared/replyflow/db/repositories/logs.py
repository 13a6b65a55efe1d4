"""Writes of the pipeline's logs (the API owns the queries). ``automation_logs`` holds every decision
(matched, skipped with a reason, queued, deferred, parked, sent, failed); ``reply_logs`` every send
outcome. Both are appended in the caller's transaction, so a decision and its ledger change commit
together; so is the decision's count in ``daily_stats`` (the rollup ``GET /v1/stats`` reads)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import insert
from sqlalchemy.orm import Session

from replyflow.clock import utcnow
from replyflow.db.models import AutomationLog, DailyStat, ReplyLog
from replyflow.db.repositories._upsert import upsert

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
    if not decisions:
        return
    now = utcnow()
    key = event_key[:255] if event_key else None
    rows = [
        {
            "tenant_id": tenant_id,
            "account_id": account_id,
            "automation_id": d.automation_id,
            "event_key": key,
            "action": d.action,
            "reason": d.reason,
            "detail": d.detail[:MAX_DETAIL] if d.detail else None,
            "created_at": now,
        }
        for d in decisions
    ]
    session.execute(insert(AutomationLog), rows)
    counts = Counter((d.automation_id or "", d.action) for d in decisions)
    table = DailyStat.__table__
    upsert(
        session,
        table,  # type: ignore[arg-type]
        [
            {
                "tenant_id": tenant_id,
                "day": now.date(),
                "account_id": account_id,
                "automation_id": automation_id,
                "action": action,
                "count": n,
            }
            for (automation_id, action), n in sorted(counts.items())
        ],
        conflict=["tenant_id", "day", "account_id", "automation_id", "action"],
        update={"count": lambda new: table.c.count + new.count},
    )


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
    session.add(
        ReplyLog(
            tenant_id=tenant_id,
            account_id=account_id,
            automation_id=automation_id,
            outbound_message_id=outbound_message_id,
            kind=kind,
            status=status,
            recipient_id=recipient_id,
            comment_id=comment_id,
            text=text,
            error_code=error_code,
            detail=detail[:MAX_DETAIL] if detail else None,
        )
    )
