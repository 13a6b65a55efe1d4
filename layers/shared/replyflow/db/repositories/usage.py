"""Monthly usage per tenant (``usage_counters``): the sender adds a DM on each successful send, the
processor reads it against the plan's quota. The increment is one upsert (no lost updates)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from replyflow.clock import utcnow
from replyflow.db.models import UsageCounter
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


def dms_sent(session: Session, tenant_id: str, *, at: datetime | None = None) -> int:
    value = session.scalar(
        select(UsageCounter.dms_sent).where(
            UsageCounter.tenant_id == tenant_id, UsageCounter.period == period_of(at or utcnow())
        )
    )
    return int(value or 0)
