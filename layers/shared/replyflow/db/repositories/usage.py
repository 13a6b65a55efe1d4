"""Monthly usage per tenant (``usage_counters``): the sender reserves a DM when it claims a send
(:func:`reserve_dm`: one conditional UPDATE, so concurrent senders can never pass the quota) and gives
it back when the send does not go out (:func:`release_dm`); the processor reads it against the plan's
quota. Every change is one statement (no lost updates)."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import CursorResult, and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from replyflow.clock import utcnow
from replyflow.db.models import OutboundMessage, Plan, Tenant, UsageCounter
from replyflow.db.repositories._upsert import upsert

# The outbound kinds that count against the plan's monthly DM quota (public replies are comments).
DM_KINDS: tuple[str, ...] = ("private_reply", "dm")


def period_of(moment: datetime) -> str:
    return moment.strftime("%Y-%m")


def add_dms(session: Session, tenant_id: str, count: int = 1, *, at: datetime | None = None) -> None:
    now = at or utcnow()
    table = UsageCounter.__table__
    upsert(
        session,
        table,  # type: ignore[arg-type]
        {"tenant_id": tenant_id, "period": period_of(now), "dms_sent": count, "updated_at": now},
        conflict=["tenant_id", "period"],
        update={
            "dms_sent": lambda new: table.c.dms_sent + new.dms_sent,
            "updated_at": lambda new: new.updated_at,
        },
    )


def reserve_dm(session: Session, tenant_id: str, quota: int, *, at: datetime) -> bool:
    """Counts one DM against the month's quota if there is room: False (nothing counted) when the
    quota is used up. Atomic under concurrency: the check and the increment are one UPDATE."""
    return reserve_dms(session, tenant_id, quota, 1, at=at)


def reserve_dms(session: Session, tenant_id: str, quota: int, count: int, *, at: datetime) -> bool:
    """``reserve_dm`` for ``count`` DMs at once: all of them, or none when the quota cannot hold them.
    The month's row is created only when the UPDATE finds none (one statement once it exists)."""
    if _reserve(session, tenant_id, quota, count, at):
        return True
    add_dms(session, tenant_id, 0, at=at)  # the month's row exists (or the quota is used up)
    return _reserve(session, tenant_id, quota, count, at)


@cache
def _reserve_stmt() -> Any:
    """``_reserve``'s UPDATE, built once with bind parameters (compiled once, then only bound)."""
    table: Any = UsageCounter.__table__
    return (
        update(table)
        .where(
            table.c.tenant_id == bindparam("p_tenant"),
            table.c.period == bindparam("p_period"),
            table.c.dms_sent <= bindparam("p_most"),
        )
        .values(dms_sent=table.c.dms_sent + bindparam("p_count"), updated_at=bindparam("p_at"))
    )


def _reserve(session: Session, tenant_id: str, quota: int, count: int, at: datetime) -> bool:
    params = {
        "p_tenant": tenant_id,
        "p_period": period_of(at),
        "p_most": quota - count,  # room for ``count`` more
        "p_count": count,
        "p_at": at,
    }
    return bool(cast("CursorResult[Any]", session.execute(_reserve_stmt(), params)).rowcount)


def release_dm(session: Session, tenant_id: str, period: str, *, now: datetime) -> None:
    """Gives back one reserved DM of ``period`` (a send that did not go out)."""
    stmt = (
        update(UsageCounter)
        .where(UsageCounter.tenant_id == tenant_id, UsageCounter.period == period, UsageCounter.dms_sent > 0)
        .values(dms_sent=UsageCounter.dms_sent - 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.execute(stmt)


def dms_sent(session: Session, tenant_id: str, *, at: datetime | None = None) -> int:
    value = session.scalar(
        select(UsageCounter.dms_sent).where(
            UsageCounter.tenant_id == tenant_id, UsageCounter.period == period_of(at or utcnow())
        )
    )
    return int(value or 0)


def dms_left(session: Session, tenant_id: str, *, at: datetime) -> int | None:
    """The plan's monthly DM quota minus the DMs counted this month, in one round trip; None when
    the tenant has no plan."""
    sent = (
        select(UsageCounter.dms_sent)
        .where(UsageCounter.tenant_id == tenant_id, UsageCounter.period == period_of(at))
        .scalar_subquery()
    )
    row = session.execute(
        select(Plan.monthly_dm_quota, func.coalesce(sent, 0))
        .join(Tenant, Tenant.plan_code == Plan.code)
        .where(Tenant.id == tenant_id)
    ).first()
    return None if row is None else int(row[0]) - int(row[1])


def stored_dms(session: Session, tenant_id: str, period: str) -> int | None:
    """The counter's value for ``period`` (``YYYY-MM``), None when the row does not exist."""
    return session.scalar(
        select(UsageCounter.dms_sent).where(
            UsageCounter.tenant_id == tenant_id, UsageCounter.period == period
        )
    )


def set_dms_if(
    session: Session, tenant_id: str, period: str, *, expected: int, value: int, now: datetime
) -> bool:
    """Compare-and-set: ``dms_sent = value`` only while it still holds ``expected``. True when set."""
    stmt = (
        update(UsageCounter)
        .where(
            UsageCounter.tenant_id == tenant_id,
            UsageCounter.period == period,
            UsageCounter.dms_sent == expected,
        )
        .values(dms_sent=value, updated_at=now)
    )
    return bool(cast("CursorResult[Any]", session.execute(stmt)).rowcount)


def ledger_dms(
    session: Session, tenant_id: str, start: datetime, end: datetime, queued_within: timedelta
) -> int:
    """DMs the ledger says were sent in ``[start, end)``, plus the ones in flight (``sending``: their
    quota is reserved, claimed in the period); ``queued_within`` bounds how long before ``start`` they
    were queued, so the count uses the (tenant_id, status, created_at) index."""
    sent = and_(
        OutboundMessage.status == "sent", OutboundMessage.sent_at >= start, OutboundMessage.sent_at < end
    )
    in_flight = and_(
        OutboundMessage.status == "sending",
        OutboundMessage.updated_at >= start,
        OutboundMessage.updated_at < end,
    )
    stmt = select(func.count()).where(
        OutboundMessage.tenant_id == tenant_id,
        OutboundMessage.status.in_(("sent", "sending")),
        OutboundMessage.created_at >= start - queued_within,
        OutboundMessage.created_at < end,
        OutboundMessage.kind.in_(DM_KINDS),
        or_(sent, in_flight),
    )
    return int(session.scalar(stmt) or 0)
