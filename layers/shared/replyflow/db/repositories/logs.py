"""Writes of the pipeline's logs (the API owns the queries). ``automation_logs`` holds every decision
(matched, skipped with a reason, queued, deferred, parked, sent, failed); ``reply_logs`` every send
outcome. Both are appended in the caller's transaction, so a decision and its ledger change commit
together."""

from __future__ import annotations

from sqlalchemy.orm import Session

from replyflow.db.models import AutomationLog, ReplyLog

MAX_DETAIL = 1000


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
    session.add(
        AutomationLog(
            tenant_id=tenant_id,
            account_id=account_id,
            automation_id=automation_id,
            event_key=event_key[:255] if event_key else None,
            action=action,
            reason=reason,
            detail=detail[:MAX_DETAIL] if detail else None,
        )
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
