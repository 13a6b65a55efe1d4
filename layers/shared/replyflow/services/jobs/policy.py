"""Which log rows have expired: one cutoff per tenant, from its plan, shared by archive and retention.

Cutoffs are aligned down to midnight UTC, so a day is archived (and deleted) as a whole partition
once every row of it is older than the plan's retention: a row lives between ``retention_days`` and
``retention_days + 1`` days. The archive covers exactly what retention will delete (archive age =
retention age), so with archiving enabled nothing is ever deleted unarchived.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from replyflow.db.models import AutomationLog, Plan, ReplyLog, Tenant
from replyflow.db.repositories.retained_tables import RETAINED_TABLES

# Every table the plan's retention prunes (archived first when archiving is on): the logs, and the
# ledgers that hold message text and recipient ids (``db.repositories.retained_tables``).
LOG_TABLES: dict[str, Table] = {
    "reply_logs": ReplyLog.__table__,  # type: ignore[dict-item]
    "automation_logs": AutomationLog.__table__,  # type: ignore[dict-item]
    **RETAINED_TABLES,
}


@dataclass(frozen=True)
class TenantRetention:
    tenant_id: str
    retention_days: int

    def cutoff(self, now: datetime) -> datetime:
        """Rows created before this instant have expired (midnight UTC)."""
        return datetime.combine((now - timedelta(days=self.retention_days)).date(), time.min)


def tenant_retentions(session: Session, tenant_ids: list[str] | None = None) -> list[TenantRetention]:
    """Every tenant with its plan's retention, ordered by id (tenants without a plan row are skipped)."""
    stmt = select(Tenant.id, Plan.log_retention_days).join(Plan, Plan.code == Tenant.plan_code)
    if tenant_ids:
        stmt = stmt.where(Tenant.id.in_(tenant_ids))
    return [TenantRetention(t, max(int(d), 1)) for t, d in session.execute(stmt.order_by(Tenant.id))]
