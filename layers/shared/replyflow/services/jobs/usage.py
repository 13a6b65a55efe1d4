"""Usage roll-over: a counter row for the current month for every tenant, reconciled with the ledger.

The send ledger (``outbound_messages`` with status ``sent``) is the truth; ``usage_counters.dms_sent``
is a fast running total the sender increments for quota checks. Each run, for the current and the
previous period (so the last hour of a month is settled after the boundary):

- inserts the missing ``(tenant, period)`` rows with the ledger's count (the roll-over);
- sets ``dms_sent`` to the ledger's count where they differ, compare-and-set on the value it read,
  so an increment racing with the job is never overwritten (the next run settles it).

DMs are the kinds that use the monthly DM quota: private replies and DMs (public comment replies
are not DMs). A message counts in the month of its ``sent_at`` (UTC). Idempotent by construction.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from replyflow.db.models import UsageCounter
from replyflow.db.repositories import tenants
from replyflow.db.repositories import usage as usage_repo
from replyflow.services.jobs.common import Deadline, JobResult

# A message is sent within days of being queued (private replies: 7 days); the bound lets the count
# use the (tenant_id, status, created_at) index.
MAX_QUEUE_TO_SEND = timedelta(days=35)


def period_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def period_bounds(period: str) -> tuple[datetime, datetime]:
    year, month = (int(p) for p in period.split("-"))
    start = datetime(year, month, 1)
    end = datetime(year + (month == 12), month % 12 + 1, 1)
    return start, end


def previous_period(period: str) -> str:
    start, _ = period_bounds(period)
    return period_of(start - timedelta(days=1))


def ledger_count(session: Session, tenant_id: str, period: str) -> int:
    start, end = period_bounds(period)
    return usage_repo.ledger_dms(session, tenant_id, start, end, MAX_QUEUE_TO_SEND)


def run_usage_rollover(sessions: sessionmaker[Session], *, now: datetime, deadline: Deadline) -> JobResult:
    result = JobResult("usage-rollover")
    started = time.perf_counter()
    current = period_of(now)
    periods = (previous_period(current), current)
    with sessions() as session:
        tenant_ids = tenants.all_ids(session)
    adjustments: list[dict[str, object]] = []
    for tenant_id in tenant_ids:
        if deadline.expired():
            result.stopped_early = True
            break
        for period in periods:
            with sessions() as session:
                _settle(
                    session,
                    tenant_id,
                    period,
                    create=period == current,
                    now=now,
                    result=result,
                    log=adjustments,
                )
        result.counts["tenants"] += 1
    result.details["period"] = current
    result.details["adjustments"] = adjustments[:100]
    result.duration_seconds = time.perf_counter() - started
    return result


def _settle(
    session: Session,
    tenant_id: str,
    period: str,
    *,
    create: bool,
    now: datetime,
    result: JobResult,
    log: list[dict[str, object]],
) -> None:
    truth = ledger_count(session, tenant_id, period)
    stored = usage_repo.stored_dms(session, tenant_id, period)
    if stored is None:
        if not create and truth == 0:
            return
        session.add(UsageCounter(tenant_id=tenant_id, period=period, dms_sent=truth, updated_at=now))
        try:
            session.commit()
            result.counts["counters_created"] += 1
        except IntegrityError:
            session.rollback()  # the sender created it first; the next run reconciles it
        return
    if stored == truth:
        result.counts["counters_in_sync"] += 1
        return
    changed = usage_repo.set_dms_if(session, tenant_id, period, expected=stored, value=truth, now=now)
    session.commit()
    if changed:
        result.counts["counters_reconciled"] += 1
        log.append({"tenant_id": tenant_id, "period": period, "was": stored, "ledger": truth})
    else:
        result.counts["counters_raced"] += 1
