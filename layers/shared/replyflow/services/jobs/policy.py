"""Which log rows have expired: one cutoff per tenant, from its plan, shared by archive and retention.

Cutoffs are aligned down to midnight UTC, so a day is archived (and deleted) as a whole partition
once every row of it is older than the plan's retention: a row lives between ``retention_days`` and
``retention_days + 1`` days. The archive covers exactly what retention will delete (archive age =
retention age), so with archiving enabled nothing is ever deleted unarchived.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy.orm import Session

from replyflow.db.repositories import tenants
from replyflow.db.repositories.log_archive import LOG_TABLES

__all__ = ["LOG_TABLES", "TenantRetention", "tenant_retentions"]


@dataclass(frozen=True)
class TenantRetention:
    tenant_id: str
    retention_days: int

    def cutoff(self, now: datetime) -> datetime:
        """Rows created before this instant have expired (midnight UTC)."""
        return datetime.combine((now - timedelta(days=self.retention_days)).date(), time.min)


def tenant_retentions(session: Session, tenant_ids: list[str] | None = None) -> list[TenantRetention]:
    """Every tenant with its plan's retention, ordered by id (tenants without a plan row are skipped)."""
    return [TenantRetention(t, max(d, 1)) for t, d in tenants.log_retention_days(session, tenant_ids)]
