"""The reads and deletes of the log lifecycle (archive and retention): expired rows of the logs and of
the retained ledgers (``retained_tables``) by tenant and day, and the ``archive_files`` rows that
record what a verified archive covers. Every query names the tenant and runs on the (tenant_id, age)
index of its table; deletes keep the rows ``prunable`` excludes (sends still pending)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Row, Table, and_, delete, func, or_, select
from sqlalchemy.orm import Session

from replyflow.db.models import ArchiveFile, AutomationLog, ReplyLog
from replyflow.db.repositories import contacts as contacts_repo
from replyflow.db.repositories.retained_tables import RETAINED_TABLES, prunable

# Every table the plan's retention prunes (archived first when archiving is on): the logs, and the
# ledgers that hold message text and recipient ids (``retained_tables``).
LOG_TABLES: dict[str, Table] = {
    "reply_logs": ReplyLog.__table__,  # type: ignore[dict-item]
    "automation_logs": AutomationLog.__table__,  # type: ignore[dict-item]
    **RETAINED_TABLES,
}


def archived_files(session: Session, tenant_id: str, before: date) -> list[ArchiveFile]:
    return list(
        session.scalars(
            select(ArchiveFile).where(ArchiveFile.tenant_id == tenant_id, ArchiveFile.day < before)
        )
    )


def archived_ranges(
    session: Session, tenant_id: str, table: str, before: date
) -> list[tuple[date, int, int]]:
    """``(day, first_id, last_id)`` of the table's verified archive files for days before ``before``."""
    stmt = select(ArchiveFile.day, ArchiveFile.first_id, ArchiveFile.last_id).where(
        ArchiveFile.tenant_id == tenant_id, ArchiveFile.table_name == table, ArchiveFile.day < before
    )
    return [(day, int(first_id), int(last_id)) for day, first_id, last_id in session.execute(stmt)]


def day_summaries(
    session: Session, table: Table, tenant_id: str, cutoff: datetime
) -> list[tuple[Any, int, int]]:
    """``(day of created_at, rows, max id)`` per day of the tenant's rows created before ``cutoff``;
    the day comes back as the driver gives it (a date, a datetime or an ISO string)."""
    day = func.date(table.c.created_at)
    stmt = (
        select(day, func.count(), func.max(table.c.id))
        .where(table.c.tenant_id == tenant_id, table.c.created_at < cutoff)
        .group_by(day)
    )
    return [(d, int(n), int(m)) for d, n, m in session.execute(stmt)]


def rows_after(
    session: Session, table: Table, tenant_id: str, start: datetime, end: datetime, after: int, limit: int
) -> Sequence[Row[Any]]:
    """Whole rows created in ``[start, end)`` with ``id > after``, by id, at most ``limit``."""
    return session.execute(
        select(*table.columns)
        .where(
            table.c.tenant_id == tenant_id,
            table.c.created_at >= start,
            table.c.created_at < end,
            table.c.id > after,
        )
        .order_by(table.c.id)
        .limit(limit)
    ).all()


def count_before(session: Session, table: Table, tenant_id: str, cutoff: datetime) -> int:
    return int(
        session.scalar(
            select(func.count()).where(
                table.c.tenant_id == tenant_id, table.c.created_at < cutoff, *prunable(table)
            )
        )
        or 0
    )


def keyset_page(
    session: Session,
    table: Table,
    tenant_id: str,
    start: datetime | None,
    end: datetime,
    position: tuple[datetime, int] | None,
    limit: int,
) -> Sequence[Row[Any, Any]]:
    """``(id, created_at)`` of the rows in ``[start, end)`` after ``position`` (created_at, id), in
    that order, at most ``limit``: one step of a keyset walk on the (tenant_id, created_at) index."""
    where = [table.c.tenant_id == tenant_id, table.c.created_at < end, *prunable(table)]
    if start is not None:
        where.append(table.c.created_at >= start)
    if position is not None:
        at, last_id = position
        where.append(or_(table.c.created_at > at, and_(table.c.created_at == at, table.c.id > last_id)))
    return session.execute(
        select(table.c.id, table.c.created_at)
        .where(*where)
        .order_by(table.c.created_at, table.c.id)
        .limit(limit)
    ).all()


def delete_ids(session: Session, table: Table, tenant_id: str, end: datetime, ids: Sequence[int]) -> int:
    """Deletes the tenant's rows with these ids created before ``end``; the number deleted."""
    stmt = delete(table).where(
        table.c.tenant_id == tenant_id, table.c.created_at < end, table.c.id.in_(ids), *prunable(table)
    )
    deleted = int(cast("CursorResult[Any]", session.execute(stmt)).rowcount or 0)
    if table.name == "contacts" and deleted:
        # A pruned contact takes its fields and tags along (those of contacts still there stay).
        contacts_repo.delete_orphan_rows(session, tenant_id, ids)
    return deleted
