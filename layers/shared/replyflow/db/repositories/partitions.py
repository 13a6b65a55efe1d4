"""The partitions of the time-partitioned log tables (MySQL only; on SQLite nothing is partitioned), and
the dedupe claims' lifecycle. Platform-level maintenance: the DDL names no tenant, but every read that
decides a drop returns the tenants found in the partition.

Layout (migration 0104): ``PARTITION BY RANGE COLUMNS(<age column>)`` with ``p_history`` (everything
before the first day), one ``pYYYYMMDD`` per UTC day (``VALUES LESS THAN`` the next midnight) and
``p_future`` (MAXVALUE, the catch-all that stays empty while the job keeps days ahead).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Table, case, delete, func, or_, select, text, tuple_
from sqlalchemy.orm import Session

from replyflow.db.models import DedupeClaim, InboundEvent, OutboundMessage
from replyflow.db.repositories.retained_tables import PENDING_STATUSES

# table -> the column its rows age by (the partitioning column).
PARTITIONED: dict[str, str] = {
    "reply_logs": "created_at",
    "automation_logs": "created_at",
    "inbound_events": "received_at",
    "outbound_messages": "created_at",
}
HISTORY = "p_history"
FUTURE = "p_future"


@dataclass(frozen=True)
class Partition:
    name: str
    lower: date | None  # None: the first partition (no lower bound)
    upper: date | None  # None: MAXVALUE
    rows_estimate: int = 0  # InnoDB's statistics (TABLE_ROWS): sampled, exact only for small partitions

    @property
    def is_day(self) -> bool:
        return self.name not in (HISTORY, FUTURE)


def day_name(day: date) -> str:
    return f"p{day:%Y%m%d}"


def _is_mysql(session: Session) -> bool:
    return session.get_bind().dialect.name in ("mysql", "mariadb")


def partitions(session: Session, table: str) -> list[Partition]:
    """The table's partitions in bound order; empty when it is not partitioned (always on SQLite)."""
    if not _is_mysql(session):
        return []
    rows = session.execute(
        text(
            "SELECT partition_name, partition_description, table_rows FROM information_schema.partitions"
            " WHERE table_schema = DATABASE() AND table_name = :t AND partition_name IS NOT NULL"
            " ORDER BY partition_ordinal_position"
        ),
        {"t": table},
    ).all()
    result: list[Partition] = []
    lower: date | None = None
    for name, description, table_rows in rows:
        upper = None if str(description).upper() == "MAXVALUE" else _bound(str(description))
        result.append(Partition(str(name), lower, upper, int(table_rows or 0)))
        lower = upper
    return result


def _bound(description: str) -> date:
    return date.fromisoformat(description.strip("'\"")[:10])


def _clause(parts: Sequence[tuple[str, date | None]]) -> str:
    return ", ".join(
        f"PARTITION {name} VALUES LESS THAN ({'MAXVALUE' if upper is None else repr(upper.isoformat())})"
        for name, upper in parts
    )


def add_days(session: Session, table: str, days: Sequence[date]) -> None:
    """One partition per day in ``days`` (consecutive, after the last day partition), split off
    ``p_future``; instant while ``p_future`` is empty (rows already in it are moved)."""
    if not days:
        return
    parts: list[tuple[str, date | None]] = [(day_name(d), d + timedelta(days=1)) for d in days]
    parts.append((FUTURE, None))
    session.execute(text(f"ALTER TABLE {table} REORGANIZE PARTITION {FUTURE} INTO ({_clause(parts)})"))


def split_history(session: Session, table: str, start: date) -> None:
    """Split ``p_history`` so that every day from ``start`` to the first day partition has its own
    partition (copies the rows of ``p_history``: for an empty table, tests and benches)."""
    current = partitions(session, table)
    if not current or current[0].name != HISTORY or current[0].upper is None:
        raise ValueError(f"{table}: no {HISTORY} partition to split")
    first = current[0].upper
    days = [start + timedelta(days=i) for i in range((first - start).days)]
    parts: list[tuple[str, date | None]] = [(HISTORY, start)]
    parts += [(day_name(d), d + timedelta(days=1)) for d in days]
    session.execute(text(f"ALTER TABLE {table} REORGANIZE PARTITION {HISTORY} INTO ({_clause(parts)})"))


def drop(session: Session, table: str, names: Sequence[str]) -> None:
    """Drop whole partitions (their rows go with them; a metadata operation, not a delete)."""
    if names:
        session.execute(text(f"ALTER TABLE {table} DROP PARTITION {', '.join(names)}"))


@dataclass(frozen=True)
class TenantDay:
    """One tenant's rows of one day in a partition."""

    tenant_id: str
    day: date
    rows: int
    max_id: int
    pending: int


def contents(session: Session, table: Table, partition: Partition) -> list[TenantDay]:
    """Every (tenant, day) with rows in the partition: count, max id and rows still pending (sends not
    settled). ``table`` is the retention view (``created_at`` keyed to the age column); the range on the
    age column prunes the scan to the partition."""
    age = table.c.created_at
    pending = table.c.status.in_(PENDING_STATUSES) if table.name == "outbound_messages" else None
    day = func.date(age)
    stmt = select(
        table.c.tenant_id,
        day,
        func.count(),
        func.max(table.c.id),
        func.sum(case((pending, 1), else_=0)) if pending is not None else func.sum(0),
    )
    if partition.lower is not None:
        stmt = stmt.where(age >= datetime.combine(partition.lower, time.min))
    if partition.upper is not None:
        stmt = stmt.where(age < datetime.combine(partition.upper, time.min))
    stmt = stmt.group_by(table.c.tenant_id, day)
    return [
        TenantDay(str(t), _as_date(d), int(n), int(m), int(p or 0)) for t, d, n, m, p in session.execute(stmt)
    ]


def day_contents(session: Session, table: Table, partition: Partition) -> list[TenantDay]:
    """``contents`` of a day partition without reading its rows: the tenants and their highest ids from
    a loose index scan of ``(tenant_id, id)`` (``GROUP BY tenant_id`` with ``MAX(id)``, one dive per
    tenant), and whether any send in it is pending (dives of ``(status, updated_at)``, the same flag
    on every tenant-day: one pending send keeps the partition). ``rows`` is 0: counting would read
    every row (:attr:`Partition.rows_estimate` is the statistics' count)."""
    if not partition.is_day or partition.upper is None:
        raise ValueError(f"{table.name}.{partition.name}: not a day partition")
    day = partition.upper - timedelta(days=1)
    only = f"PARTITION ({partition.name})"
    tops = session.execute(
        select(table.c.tenant_id, func.max(table.c.id)).with_hint(table, only).group_by(table.c.tenant_id)
    ).all()
    pending = 0
    if tops and table.name == "outbound_messages":
        probe = select(table.c.id).with_hint(table, only).where(table.c.status.in_(PENDING_STATUSES)).limit(1)
        pending = int(session.scalar(probe) is not None)
    return [TenantDay(str(t), day, 0, int(m), pending) for t, m in tops]


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


# Dedupe claims ------------------------------------------------------------------------------------


Claim = tuple[int, str, str, str, datetime]  # (id, account_id, kind, claim_key, claimed_at)


def expired_claims(
    session: Session, tenant_id: str, cutoff: datetime, after: tuple[datetime, int] | None, limit: int
) -> list[Claim]:
    """The tenant's claims made before ``cutoff`` after ``after`` (``(claimed_at, id)``), in that order,
    at most ``limit``: one step of a keyset walk of ``(tenant_id, claimed_at)`` (InnoDB appends ``id``;
    the table is not partitioned, so the index orders by it), reading exactly the chunk."""
    age = DedupeClaim.claimed_at
    where = [DedupeClaim.tenant_id == tenant_id, age < cutoff]
    if after is not None:
        at, last_id = after
        where += [age >= at, or_(age > at, DedupeClaim.id > last_id)]
    stmt = (
        select(DedupeClaim.id, DedupeClaim.account_id, DedupeClaim.kind, DedupeClaim.claim_key, age)
        .where(*where)
        .order_by(age, DedupeClaim.id)
        .limit(limit)
    )
    return [(int(i), str(a), str(k), str(c), at) for i, a, k, c, at in session.execute(stmt)]


def held_keys(session: Session, tenant_id: str, claims: Sequence[Claim]) -> set[tuple[str, str, str]]:
    """The ``(account_id, kind, key)`` of these claims whose ledger row still exists (kept unarchived or
    pending): their claims stay. A ledger row ages from its claim's instant, so only rows within the
    claims' time range (a second either side: DATETIME keeps whole seconds) can hold one; one probe
    per ledger table finds none in the common case (their partitions were dropped), else the keys
    are looked up, pruned to the partitions of that range."""
    if not claims:
        return set()
    lo = min(c[4] for c in claims) - timedelta(seconds=1)
    hi = max(c[4] for c in claims) + timedelta(seconds=1)
    held: set[tuple[str, str, str]] = set()
    inbound = [(c[1], c[3]) for c in claims if c[2] == "inbound"]
    outbound = [(c[1], c[2], c[3]) for c in claims if c[2] != "inbound"]
    if inbound and _any_between(session, InboundEvent.__table__, InboundEvent.received_at, tenant_id, lo, hi):
        rows = session.execute(
            select(InboundEvent.account_id, InboundEvent.event_key).where(
                InboundEvent.tenant_id == tenant_id,
                InboundEvent.received_at.between(lo, hi),
                tuple_(InboundEvent.account_id, InboundEvent.event_key).in_(inbound),
            )
        )
        held |= {(str(a), "inbound", str(k)) for a, k in rows}
    if outbound and _any_between(
        session, OutboundMessage.__table__, OutboundMessage.created_at, tenant_id, lo, hi
    ):
        sends = session.execute(
            select(OutboundMessage.account_id, OutboundMessage.kind, OutboundMessage.dedupe_key).where(
                OutboundMessage.tenant_id == tenant_id,
                OutboundMessage.created_at.between(lo, hi),
                tuple_(OutboundMessage.account_id, OutboundMessage.kind, OutboundMessage.dedupe_key).in_(
                    outbound
                ),
            )
        )
        held |= {(str(a), str(k), str(d)) for a, k, d in sends}
    return held


def _any_between(session: Session, table: Any, age: Any, tenant_id: str, lo: datetime, hi: datetime) -> bool:
    """Whether the tenant has a row aged in ``[lo, hi]`` (one dive of its (tenant_id, age) index)."""
    probe = select(table.c.id).where(table.c.tenant_id == tenant_id, age.between(lo, hi)).limit(1)
    return session.scalar(probe) is not None


def delete_claims(session: Session, tenant_id: str, ids: Sequence[int]) -> int:
    if not ids:
        return 0
    stmt = delete(DedupeClaim).where(DedupeClaim.tenant_id == tenant_id, DedupeClaim.id.in_(ids))
    return int(cast("CursorResult[Any]", session.execute(stmt)).rowcount or 0)


def delete_claim_range(session: Session, tenant_id: str, first: Claim, last: Claim, cutoff: datetime) -> int:
    """Delete the tenant's claims made before ``cutoff`` from ``first`` to ``last`` in
    ``(claimed_at, id)`` order, both included: a range of ``(tenant_id, claimed_at)``, no id list.
    Exactly the chunk :func:`expired_claims` read between them, since no claim is made in the past
    (``claimed_at`` is the insert time, the cutoff days before it)."""
    age = DedupeClaim.claimed_at
    (first_id, first_at), (last_id, last_at) = (first[0], first[4]), (last[0], last[4])
    stmt = delete(DedupeClaim).where(
        DedupeClaim.tenant_id == tenant_id,
        age < cutoff,
        age.between(first_at, last_at),
        or_(age > first_at, DedupeClaim.id >= first_id),
        or_(age < last_at, DedupeClaim.id <= last_id),
    )
    return int(cast("CursorResult[Any]", session.execute(stmt)).rowcount or 0)
