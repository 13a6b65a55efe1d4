"""Partitioned logs: the ``partitions`` job keeps day partitions ahead, and retention drops whole
partitions (MySQL only; on SQLite both do nothing and retention deletes in chunks).

Invariants:
- ``run_partition_maintenance`` makes sure every table of ``PARTITIONED`` has a day partition for
  every day up to ``now + ahead_days``; rows never wait in ``p_future`` while the job runs daily (if
  it stopped, rows land in ``p_future`` and are moved into their days when it runs again).
- ``drop_expired_partitions`` drops a partition only when every (tenant, day) found in it is:
  a tenant with a plan, past that tenant's cutoff for the whole partition (its upper bound is at or
  before the cutoff), with no send still pending, and, when the archive is required, covered by the
  tenant's verified archive files of that table and day (the highest id of the day is within the
  files' ranges: files take a day's rows by id in order, so their ranges leave no row out). A
  partition that fails for any one tenant (a longer retention, rows not archived yet) is kept; its
  expired rows go through retention's chunked deletes.
- Rows never arrive in a partition that is past every cutoff: the age column is the insert time.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import copy_context
from datetime import date, datetime, time, timedelta
from time import perf_counter

from sqlalchemy.orm import Session, sessionmaker

from replyflow.db.repositories import log_archive
from replyflow.db.repositories import partitions as parts
from replyflow.db.shards import held_tenants
from replyflow.services.jobs.common import Deadline, JobResult
from replyflow.services.jobs.policy import LOG_TABLES, TenantRetention

DEFAULT_AHEAD_DAYS = 14


def run_partition_maintenance(
    sessions: sessionmaker[Session],
    *,
    now: datetime,
    deadline: Deadline,
    ahead_days: int = DEFAULT_AHEAD_DAYS,
) -> JobResult:
    result = JobResult("partitions")
    through = now.date() + timedelta(days=ahead_days)
    for table in parts.PARTITIONED:
        if deadline.expired():
            result.stopped_early = True
            break
        with sessions() as session:
            current = parts.partitions(session, table)
            if not current:
                result.counts["tables_not_partitioned"] += 1
                continue
            days = [p.lower for p in current if p.is_day and p.lower is not None]
            last = max(days) if days else _first_bound(current, now.date()) - timedelta(days=1)
            missing = [last + timedelta(days=i) for i in range(1, (through - last).days + 1)]
            parts.add_days(session, table, missing)
            session.commit()
        result.counts["partitions_added"] += len(missing)
        result.counts["tables_partitioned"] += 1
    return result


def _first_bound(current: list[parts.Partition], today: date) -> date:
    history = current[0]
    return history.upper if history.name == parts.HISTORY and history.upper is not None else today


def drop_expired_partitions(
    sessions: sessionmaker[Session],
    policies: list[TenantRetention],
    *,
    now: datetime,
    deadline: Deadline,
    require_archive: bool,
    counts: Counter[str],
    dropped: dict[str, list[parts.Partition]] | None = None,
    seconds: dict[str, float] | None = None,
) -> bool:
    """Drop every partition whose rows have all expired (and are archived, when required); False when
    the deadline stopped it. Counts ``partitions_dropped``, ``rows_dropped`` and ``rows_dropped_<table>``
    (the partitions' row statistics: an estimate, counting would read every row); ``dropped``
    receives the partitions dropped per table (their whole ranges are empty now); ``seconds`` the
    wall times: ``read`` (the decisions), ``drop_longest`` (the slowest table's statement) and
    ``total``.

    The decisions read a few index entries per tenant and partition, one table after another; each
    table's drops are one ``ALTER TABLE ... DROP PARTITION`` of all its droppable partitions (a single
    DDL statement per table, whatever the number of partitions), started on a connection of its own
    as soon as that table is decided, so it runs while the next tables are read and beside the other
    tables' statements (its cost is per dropped partition, mostly waiting on the disk, and different
    tables take no lock of each other)."""
    if not policies:
        return True
    with sessions() as session:
        if held_tenants(session):  # a partition holds a moving tenant's rows too: chunked deletes only
            counts["partition_drops_deferred_by_move"] += 1
            return True
    cutoffs = {p.tenant_id: p.cutoff(now) for p in policies}
    coverage = _ArchiveCoverage(max(cutoffs.values()).date())
    plan: dict[str, list[parts.Partition]] = {}
    started = perf_counter()
    read = 0.0
    with ThreadPoolExecutor(max_workers=len(parts.PARTITIONED)) as pool:
        drops: list[Future[float]] = []
        for table_name in parts.PARTITIONED:
            if deadline.expired():
                break
            table_started = perf_counter()
            plan[table_name] = _droppable(
                sessions, table_name, cutoffs, coverage, require_archive, deadline, counts
            )
            read += perf_counter() - table_started
            # This table's statement runs while the next table is read (at most one connection
            # reading and one per table dropping: no more than the drops alone used to hold).
            # Each drop in a copy of this context: its session opens on this run's shard (``on_shard``).
            drops.append(pool.submit(copy_context().run, _drop, sessions, table_name, plan[table_name]))
        drop_seconds = [d.result() for d in drops]
    if seconds is not None:
        seconds["read"] = read
        seconds["drop_longest"] = max(drop_seconds, default=0.0)
        seconds["total"] = perf_counter() - started
    for table_name, droppable in plan.items():
        if dropped is not None:
            dropped[table_name] = droppable
        rows = sum(p.rows_estimate for p in droppable)
        counts["partitions_dropped"] += len(droppable)
        counts["rows_dropped"] += rows
        counts[f"rows_dropped_{table_name}"] += rows
    return len(plan) == len(parts.PARTITIONED) and not deadline.expired()


def _droppable(
    sessions: sessionmaker[Session],
    table_name: str,
    cutoffs: dict[str, datetime],
    coverage: _ArchiveCoverage,
    require_archive: bool,
    deadline: Deadline,
    counts: Counter[str],
) -> list[parts.Partition]:
    """The table's partitions past the latest cutoff whose every tenant-day may go."""
    latest = max(cutoffs.values())
    droppable: list[parts.Partition] = []
    with sessions() as session:
        candidates = [
            p
            for p in parts.partitions(session, table_name)
            if p.upper is not None
            and p.name != parts.FUTURE
            and datetime.combine(p.upper, time.min) <= latest
        ]
        for partition in candidates:
            if deadline.expired():
                break
            if partition.is_day:
                found = parts.day_contents(session, LOG_TABLES[table_name], partition)
            else:  # p_history spans many days: grouped by day (it goes once)
                found = parts.contents(session, LOG_TABLES[table_name], partition)
            if _all_expired(session, found, partition, cutoffs, coverage, table_name, require_archive):
                droppable.append(partition)
            else:
                counts["partitions_kept"] += 1
    return droppable


def _drop(sessions: sessionmaker[Session], table_name: str, droppable: list[parts.Partition]) -> float:
    """One ``ALTER TABLE ... DROP PARTITION`` of every droppable partition of the table (none when
    there is nothing to drop); its wall time."""
    started = perf_counter()
    with sessions() as session:
        parts.drop(session, table_name, [p.name for p in droppable])
        session.commit()
    return perf_counter() - started


def _all_expired(
    session: Session,
    found: list[parts.TenantDay],
    partition: parts.Partition,
    cutoffs: dict[str, datetime],
    coverage: _ArchiveCoverage,
    table_name: str,
    require_archive: bool,
) -> bool:
    assert partition.upper is not None
    upper = datetime.combine(partition.upper, time.min)
    return all(
        d.tenant_id in cutoffs
        and upper <= cutoffs[d.tenant_id]
        and d.pending == 0
        and (not require_archive or coverage.covered(session, d.tenant_id, table_name, d.day) >= d.max_id)
        for d in found
    )


class _ArchiveCoverage:
    """The highest id the verified archive files cover, per tenant, table and day (read once per
    tenant, on the session of the decision that needs it: the decisions hold one connection, and the
    drops started meanwhile one each)."""

    def __init__(self, before: date) -> None:
        self._before = before
        self._by_tenant: dict[str, dict[tuple[str, date], int]] = {}

    def covered(self, session: Session, tenant_id: str, table: str, day: date) -> int:
        if tenant_id not in self._by_tenant:
            files = log_archive.archived_files(session, tenant_id, self._before)
            top: dict[tuple[str, date], int] = {}
            for f in files:
                key = (f.table_name, f.day)
                top[key] = max(top.get(key, 0), int(f.last_id))
            self._by_tenant[tenant_id] = top
        return self._by_tenant[tenant_id].get((table, day), 0)
