"""Retention: delete reply and automation logs older than the tenant's plan retention.

Invariants:
- A row is deleted only if it is expired (``created_at`` before the tenant's cutoff, see
  :mod:`~replyflow.services.jobs.policy`) and, when ``require_archive`` is set (the default), a
  verified archive file covers it (``archive_files``: same tenant, table and day, id in its range).
  Expired rows that no archive covers yet are kept and counted (``rows_kept_unarchived``).
- Deletes go in chunks of at most ``chunk_size`` rows by primary key, each chunk its own short
  transaction: the chunk's ids come from a keyset walk of the (tenant_id, created_at) index, then
  ``DELETE ... WHERE tenant_id = ? AND created_at < cutoff AND id IN (...)`` touches only those rows.
- Deleting is by predicate, so the job keeps no checkpoint: stopped (deadline) or crashed at any
  point, the next run deletes what is left, and nothing else.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter, defaultdict
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Table, and_, delete, or_, select
from sqlalchemy.orm import Session, sessionmaker

from replyflow.db.models import ArchiveFile
from replyflow.services.jobs.common import Deadline, JobResult
from replyflow.services.jobs.policy import LOG_TABLES, TenantRetention, tenant_retentions

DEFAULT_CHUNK_SIZE = 5_000


class _Coverage:
    """The id ranges verified archive files cover, per day, for one tenant and table."""

    def __init__(self, ranges: dict[date, list[tuple[int, int]]]) -> None:
        self._starts = {d: [r[0] for r in sorted(rs)] for d, rs in ranges.items()}
        self._ranges = {d: sorted(rs) for d, rs in ranges.items()}

    def covers(self, day: date, row_id: int) -> bool:
        starts = self._starts.get(day)
        if not starts:
            return False
        i = bisect.bisect_right(starts, row_id) - 1
        return i >= 0 and self._ranges[day][i][0] <= row_id <= self._ranges[day][i][1]


def _coverage(session: Session, tenant_id: str, table: str, before: date) -> _Coverage:
    ranges: dict[date, list[tuple[int, int]]] = defaultdict(list)
    stmt = select(ArchiveFile.day, ArchiveFile.first_id, ArchiveFile.last_id).where(
        ArchiveFile.tenant_id == tenant_id, ArchiveFile.table_name == table, ArchiveFile.day < before
    )
    for day, first_id, last_id in session.execute(stmt):
        ranges[day].append((int(first_id), int(last_id)))
    return _Coverage(ranges)


def run_retention(
    sessions: sessionmaker[Session],
    *,
    now: datetime,
    deadline: Deadline,
    require_archive: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    tenant_ids: list[str] | None = None,
) -> JobResult:
    result = JobResult("retention")
    started = time.perf_counter()
    with sessions() as session:
        policies = tenant_retentions(session, tenant_ids)
    per_tenant: dict[str, dict[str, int]] = {}
    for policy in policies:
        if deadline.expired():
            result.stopped_early = True
            break
        counts: Counter[str] = Counter()
        for table_name, table in LOG_TABLES.items():
            if not _purge_table(
                sessions, table_name, table, policy, now, deadline, require_archive, chunk_size, counts
            ):
                result.stopped_early = True
                break
        result.counts["tenants"] += 1
        result.counts.update(counts)
        deleted = {k.removeprefix("deleted_"): v for k, v in counts.items() if k.startswith("deleted_") and v}
        if deleted or counts["rows_kept_unarchived"]:
            per_tenant[policy.tenant_id] = {**deleted, "kept_unarchived": counts["rows_kept_unarchived"]}
        if result.stopped_early:
            break
    result.counts["rows_deleted"] = sum(v for k, v in result.counts.items() if k.startswith("deleted_"))
    result.details["deleted_per_tenant"] = per_tenant
    result.duration_seconds = time.perf_counter() - started
    return result


def _purge_table(
    sessions: sessionmaker[Session],
    table_name: str,
    table: Table,
    policy: TenantRetention,
    now: datetime,
    deadline: Deadline,
    require_archive: bool,
    chunk_size: int,
    counts: Counter[str],
) -> bool:
    """Delete one table's expired rows for one tenant; False when the deadline stopped it."""
    tenant_id = policy.tenant_id
    cutoff = policy.cutoff(now)
    with sessions() as session:
        coverage = _coverage(session, tenant_id, table_name, cutoff.date()) if require_archive else None
    position: tuple[datetime, int] | None = None
    while True:
        if deadline.expired():
            return False
        where = [table.c.tenant_id == tenant_id, table.c.created_at < cutoff]
        if position is not None:
            at, last_id = position
            where.append(or_(table.c.created_at > at, and_(table.c.created_at == at, table.c.id > last_id)))
        with sessions() as session:
            batch = session.execute(
                select(table.c.id, table.c.created_at)
                .where(*where)
                .order_by(table.c.created_at, table.c.id)
                .limit(chunk_size)
            ).all()
            if not batch:
                return True
            position = (batch[-1].created_at, int(batch[-1].id))
            if coverage is None:
                ids = [int(r.id) for r in batch]
            else:
                ids = [int(r.id) for r in batch if coverage.covers(r.created_at.date(), int(r.id))]
                counts["rows_kept_unarchived"] += len(batch) - len(ids)
            if ids:
                stmt = delete(table).where(
                    table.c.tenant_id == tenant_id, table.c.created_at < cutoff, table.c.id.in_(ids)
                )
                deleted = cast("CursorResult[Any]", session.execute(stmt)).rowcount
                session.commit()
                counts[f"deleted_{table_name}"] += int(deleted or 0)
                counts["chunks"] += 1
        if len(batch) < chunk_size:
            return True
