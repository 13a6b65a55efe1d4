"""Reply and automation logs, newest first, with opaque keyset cursors (never OFFSET).

The cursor is urlsafe base64 of ``{"l": <log kind>, "t": <created_at>, "i": <id>}``: the last row
of the page. It carries no filter: the client sends the same filters with it (a cursor of one log kind
is refused by the other). A malformed cursor is a 422, never a full scan.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy.orm import Session

from replyflow.db.repositories import log_queries
from replyflow.db.repositories.log_queries import Keyset, LogFilter
from replyflow.errors import MalformedJsonError, ValidationError
from replyflow.json_input import INT64_MAX, decode_json
from replyflow.services.access import Principal
from replyflow.timestamps import UtcDateTime

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
ReplyStatus = Literal["sent", "failed", "skipped", "deferred", "parked", "queued", "unknown"]
AutomationAction = Literal["matched", "skipped", "queued", "parked", "deferred", "sent", "failed", "unknown"]


class ReplyLogView(BaseModel):
    id: int
    account_id: str
    automation_id: str | None
    kind: str
    status: str
    recipient_id: str | None
    comment_id: str | None
    text: str | None
    error_code: str | None
    detail: str | None
    created_at: UtcDateTime


class AutomationLogView(BaseModel):
    id: int
    account_id: str
    automation_id: str | None
    event_key: str | None
    action: str
    reason: str | None
    detail: str | None
    created_at: UtcDateTime


class ReplyLogPage(BaseModel):
    items: list[ReplyLogView]
    next_cursor: str | None


class AutomationLogPage(BaseModel):
    items: list[AutomationLogView]
    next_cursor: str | None


def encode_cursor(kind: str, created_at: datetime, row_id: int) -> str:
    raw = json.dumps({"l": kind, "t": created_at.isoformat(), "i": row_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None) -> Keyset | None:
    if not cursor:
        return None
    try:
        data = decode_json(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(data, dict) or data.get("l") != kind:
            raise ValueError("cursor of another log")
        row_id, created = data.get("i"), data.get("t")
        # Ids are BIGINT: one outside 1..2^63-1 would reach the database as an overflow, not a row.
        if not isinstance(row_id, int) or isinstance(row_id, bool) or not 1 <= row_id <= INT64_MAX:
            raise ValueError("cursor id out of range")
        if not isinstance(created, str):
            raise ValueError("cursor time missing")
        created_at = datetime.fromisoformat(created)
        if created_at.tzinfo is not None:
            created_at = created_at.astimezone(UTC).replace(tzinfo=None)
        return Keyset(created_at, row_id)
    except (ValueError, OverflowError, binascii.Error, MalformedJsonError):
        raise ValidationError(
            "the cursor is not valid for this list",
            code="invalid_cursor",
            details=[{"loc": ["query", "cursor"]}],
        ) from None


def _check(limit: int, since: datetime | None, until: datetime | None) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be 1 to {MAX_LIMIT}", details=[{"loc": ["query", "limit"]}])
    if since is not None and until is not None and since >= until:
        raise ValidationError("since must be before until", details=[{"loc": ["query", "since"]}])


def _naive(value: datetime | None) -> datetime | None:
    """UTC without tzinfo, as the columns store it; an offset that leaves datetime's range is a 422."""
    if value is None or value.tzinfo is None:
        return value
    try:
        return value.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise ValidationError(
            "the time is out of range", details=[{"loc": ["query"], "msg": value.isoformat()}]
        ) from None


def reply_logs(
    session: Session,
    principal: Principal,
    *,
    account_id: str | None = None,
    automation_id: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> ReplyLogPage:
    since, until = _naive(since), _naive(until)
    _check(limit, since, until)
    flt = LogFilter(
        account_id=account_id, automation_id=automation_id, status=status, since=since, until=until
    )
    rows, more = log_queries.reply_logs(session, principal.tenant_id, flt, decode_cursor("r", cursor), limit)
    items = [ReplyLogView.model_validate(r, from_attributes=True) for r in rows]
    next_cursor = encode_cursor("r", rows[-1].created_at, rows[-1].id) if more and rows else None
    return ReplyLogPage(items=items, next_cursor=next_cursor)


def automation_logs(
    session: Session,
    principal: Principal,
    *,
    account_id: str | None = None,
    automation_id: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> AutomationLogPage:
    since, until = _naive(since), _naive(until)
    _check(limit, since, until)
    flt = LogFilter(
        account_id=account_id, automation_id=automation_id, action=action, since=since, until=until
    )
    rows, more = log_queries.automation_logs(
        session, principal.tenant_id, flt, decode_cursor("a", cursor), limit
    )
    items = [AutomationLogView.model_validate(r, from_attributes=True) for r in rows]
    next_cursor = encode_cursor("a", rows[-1].created_at, rows[-1].id) if more and rows else None
    return AutomationLogPage(items=items, next_cursor=next_cursor)
