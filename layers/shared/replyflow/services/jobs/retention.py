"""Retention: delete reply and automation logs, inbound events, settled sends and silent contacts
older than the tenant's plan retention (the tables: ``policy.LOG_TABLES``).

Invariants:
- A row is deleted only if it is expired (``created_at`` before the tenant's cutoff, see
  :mod:`~replyflow.services.jobs.policy`) and, when ``require_archive`` is set (the default), a
  verified archive file covers it (``archive_files``: same tenant, table and day, id in its range).
  Expired rows that no archive covers yet are kept and counted (``rows_kept_unarchived``).
- Deletes go in chunks of at most ``chunk_size`` rows by primary key, each chunk its own short
  transaction: the chunk's ids come from a keyset walk of the (tenant_id, created_at) index over the
  archived days only, then ``DELETE ... WHERE tenant_id = ? AND created_at < cutoff AND id IN (...)``
  touches only those rows (row locks on exactly them; READ COMMITTED takes no gap locks).
- Deleting is by predicate, so the job keeps no checkpoint: stopped (deadline) or crashed at any
  point, the next run deletes what is left, and nothing else.
- On MySQL the four partitioned tables first lose every day partition whose rows have all expired
  and are archived (:mod:`~replyflow.services.jobs.partitions`, one DROP PARTITION each); the chunked
  walk then deletes what is left (tenants whose rows share a partition with a longer retention).
- A tenant's dedupe claims (``dedupe_claims``) made before its cutoff are deleted after its ledger
  rows, in chunks, except those whose ledger row is still there (kept unarchived or pending), so a
  key is never released while its row exists.
- A tenant's finished flow runs that ended before its cutoff go last, with their timers; active runs
  never (:mod:`~replyflow.services.jobs.flow_retention`).
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta
from time import perf_counter

from sqlalchemy import Table
from sqlalchemy.orm import Session, sessionmaker

from replyflow.db.repositories import log_archive
from replyflow.db.repositories import partitions as parts
from replyflow.db.repositories.partitions import Partition
from replyflow.services.jobs.common import Deadline, JobResult, delete_in_chunks
from replyflow.services.jobs.flow_retention import purge_flow_runs
from replyflow.services.jobs.partitions import drop_expired_partitions
from replyflow.services.jobs.policy import LOG_TABLES, TenantRetention, tenant_retentions

DEFAULT_CHUNK_SIZE = 5_000


class _Coverage:
    """The id ranges verified archive files cover, per day, for one tenant and table."""

    def __init__(self, ranges: dict[date, list[tuple[int, int]]]) -> None:
        self._starts = {d: [r[0] for r in sorted(rs)] for d, rs in ranges.items()}
        self._ranges = {d: sorted(rs) for d, rs in ranges.items()}

    def days(self) -> list[date]:
        return sorted(self._ranges)

    def covers(self, day: date, row_id: int) -> bool:
        starts = self._starts.get(day)
        if not starts:
            return False
        i = bisect.bisect_right(starts, row_id) - 1
        return i >= 0 and self._ranges[day][i][0] <= row_id <= self._ranges[day][i][1]


def _coverage(session: Session, tenant_id: str, table: str, before: date) -> _Coverage:
    ranges: dict[date, list[tuple[int, int]]] = defaultdict(list)
    for day, first_id, last_id in log_archive.archived_ranges(session, tenant_id, table, before):
        ranges[day].append((first_id, last_id))
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
    started = perf_counter()
    with sessions() as session:
        policies = tenant_retentions(session, tenant_ids)
    per_tenant: dict[str, dict[str, int]] = {}
    # Only every tenant's policy can tell that a partition is past retention (a tenant subset cannot).
    gone: dict[str, list[Partition]] = {}
    seconds: dict[str, float] = {}
    if tenant_ids is None and not drop_expired_partitions(
        sessions,
        policies,
        now=now,
        deadline=deadline,
        require_archive=require_archive,
        counts=result.counts,
        dropped=gone,
        seconds=seconds,
    ):
        result.stopped_early = True
        policies = []
    for policy in policies:
        if deadline.expired():
            result.stopped_early = True
            break
        counts: Counter[str] = Counter()
        if not _purge_tenant(sessions, policy, now, deadline, require_archive, chunk_size, counts, gone):
            result.stopped_early = True
        result.counts["tenants"] += 1
        result.counts.update(counts)
        deleted = {k.removeprefix("deleted_"): v for k, v in counts.items() if k.startswith("deleted_") and v}
        if deleted or counts["rows_kept_unarchived"]:
            per_tenant[policy.tenant_id] = {**deleted, "kept_unarchived": counts["rows_kept_unarchived"]}
        if result.stopped_early:
            break
    result.counts["rows_deleted"] = sum(v for k, v in result.counts.items() if k.startswith("deleted_"))
    result.counts["rows_removed"] = result.counts["rows_deleted"] + result.counts["rows_dropped"]
    result.details["deleted_per_tenant"] = per_tenant
    if seconds:
        result.details["partition_seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    result.duration_seconds = perf_counter() - started
    return result


def _purge_tenant(
    sessions: sessionmaker[Session],
    policy: TenantRetention,
    now: datetime,
    deadline: Deadline,
    require_archive: bool,
    chunk_size: int,
    counts: Counter[str],
    gone: dict[str, list[Partition]],
) -> bool:
    """One tenant's chunked deletes (the log tables, then its claims, then its flow runs); False when
    the deadline stopped it."""
    for table_name, table in LOG_TABLES.items():
        dropped = gone.get(table_name, [])
        if not _purge_table(
            sessions, table_name, table, policy, now, deadline, require_archive, chunk_size, counts, dropped
        ):
            return False
    return _purge_claims(sessions, policy, now, deadline, chunk_size, counts) and purge_flow_runs(
        sessions, policy, now, deadline, chunk_size, counts
    )


def _purge_claims(
    sessions: sessionmaker[Session],
    policy: TenantRetention,
    now: datetime,
    deadline: Deadline,
    chunk_size: int,
    counts: Counter[str],
) -> bool:
    """Delete the tenant's claims made before its cutoff whose ledger rows are gone; False when the
    deadline stopped it."""
    cutoff = policy.cutoff(now)
    after: tuple[datetime, int] | None = None

    def chunk() -> int:
        nonlocal after
        with sessions() as session:
            claims = parts.expired_claims(session, policy.tenant_id, cutoff, after, chunk_size)
            if not claims:
                return 0
            after = (claims[-1][4], claims[-1][0])
            held = parts.held_keys(session, policy.tenant_id, claims)
            ids = [c[0] for c in claims if (c[1], c[2], c[3]) not in held]
            if len(ids) == len(claims):  # the common case: one range, no id list
                deleted = parts.delete_claim_range(session, policy.tenant_id, claims[0], claims[-1], cutoff)
            else:
                deleted = parts.delete_claims(session, policy.tenant_id, ids)
            session.commit()
        if deleted:
            counts["claims_deleted"] += deleted
        if len(ids) < len(claims):
            counts["claims_kept"] += len(claims) - len(ids)
        return len(claims)

    return delete_in_chunks(deadline, chunk_size, chunk)


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
    dropped: list[Partition],
) -> bool:
    """Delete one table's expired rows for one tenant; False when the deadline stopped it.

    With the archive required, only the days that have verified files are walked (a day with none
    costs nothing); the expired rows left afterwards are the unarchived ones, counted once.
    """
    tenant_id = policy.tenant_id
    cutoff = policy.cutoff(now)
    if not require_archive:
        return _walk_and_delete(
            sessions, table_name, table, tenant_id, None, cutoff, None, deadline, chunk_size, counts
        )
    with sessions() as session:
        coverage = _coverage(session, tenant_id, table_name, cutoff.date())
    for day in coverage.days():
        if any(_within(day, p) for p in dropped):
            continue  # its partition was dropped: nothing of that day is left
        start = datetime.combine(day, time.min)
        end = min(start + timedelta(days=1), cutoff)
        if not _walk_and_delete(
            sessions, table_name, table, tenant_id, start, end, coverage, deadline, chunk_size, counts
        ):
            return False
    with sessions() as session:
        left = log_archive.count_before(session, table, tenant_id, cutoff)
    counts["rows_kept_unarchived"] += left
    return True


def _within(day: date, partition: Partition) -> bool:
    return (partition.lower is None or partition.lower <= day) and (
        partition.upper is not None and day < partition.upper
    )


def _walk_and_delete(
    sessions: sessionmaker[Session],
    table_name: str,
    table: Table,
    tenant_id: str,
    start: datetime | None,
    end: datetime,
    coverage: _Coverage | None,
    deadline: Deadline,
    chunk_size: int,
    counts: Counter[str],
) -> bool:
    """Keyset walk of ``[start, end)`` on the (tenant_id, created_at) index, deleting covered rows in
    chunks of at most ``chunk_size``, each chunk its own transaction."""
    position: tuple[datetime, int] | None = None
    while True:
        if deadline.expired():
            return False
        with sessions() as session:
            batch = log_archive.keyset_page(session, table, tenant_id, start, end, position, chunk_size)
            if not batch:
                return True
            position = (batch[-1].created_at, int(batch[-1].id))
            if coverage is None:
                ids = [int(r.id) for r in batch]
            else:
                ids = [int(r.id) for r in batch if coverage.covers(r.created_at.date(), int(r.id))]
            if ids:
                deleted = log_archive.delete_ids(session, table, tenant_id, end, ids)
                session.commit()
                counts[f"deleted_{table_name}"] += deleted
                counts["chunks"] += 1
        if len(batch) < chunk_size:
            return True
