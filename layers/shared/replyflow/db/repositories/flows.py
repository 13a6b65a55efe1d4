"""Flows, their immutable versions, runs, timers and step counters (docs/architecture.md, "Flows").

Invariants:
- a version is written once and never updated; a run names the version it started on;
- one active run per contact per flow: ``start_run`` is an INSERT against ``uq_flow_runs_active``
  (``active_key`` '1' while active, null once ended), inside a SAVEPOINT, None when taken;
- a timer fires once: ``claim_timer`` is one conditional UPDATE ``pending`` -> ``fired``, made in
  the transaction that advances the run, so two sweeps (or a sweep and a redelivery) cannot both act;
- the timer sweep is platform-wide (a job), so ``due_timers`` takes an optional list of tenant ids;
- step counters go to the totals and to the day's row in one call (``count_step``);
- retention deletes only finished runs (``active_key`` null), with their timers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Table, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from replyflow.db.engine import is_duplicate_key
from replyflow.db.models import Flow, FlowRun, FlowStepDaily, FlowStepStat, FlowTimer, FlowVersion
from replyflow.db.repositories._upsert import upsert

ACTIVE = "1"


# -- flows and versions ----------------------------------------------------------------------------


def create_flow(session: Session, tenant_id: str, account_id: str, *, name: str) -> Flow:
    flow = Flow(tenant_id=tenant_id, account_id=account_id, name=name, latest_version=0)
    session.add(flow)
    session.flush()
    return flow


def get_flow(session: Session, tenant_id: str, flow_id: str) -> Flow | None:
    return session.scalar(select(Flow).where(Flow.tenant_id == tenant_id, Flow.id == flow_id))


def list_flows(session: Session, tenant_id: str, *, account_id: str | None = None) -> Sequence[Flow]:
    query = select(Flow).where(Flow.tenant_id == tenant_id)
    if account_id is not None:
        query = query.where(Flow.account_id == account_id)
    return session.scalars(query.order_by(Flow.created_at, Flow.id)).all()


def add_version(session: Session, tenant_id: str, flow: Flow, graph: dict[str, Any]) -> FlowVersion:
    """The next version of ``flow`` (the caller holds the flow row: versions are numbered by it)."""
    flow.latest_version += 1
    row = FlowVersion(tenant_id=tenant_id, flow_id=flow.id, version=flow.latest_version, graph=graph)
    session.add(row)
    session.flush()
    return row


def get_version(session: Session, tenant_id: str, flow_id: str, version: int) -> FlowVersion | None:
    return session.scalar(
        select(FlowVersion).where(
            FlowVersion.tenant_id == tenant_id, FlowVersion.flow_id == flow_id, FlowVersion.version == version
        )
    )


def list_versions(session: Session, tenant_id: str, flow_id: str) -> Sequence[FlowVersion]:
    return session.scalars(
        select(FlowVersion)
        .where(FlowVersion.tenant_id == tenant_id, FlowVersion.flow_id == flow_id)
        .order_by(FlowVersion.version)
    ).all()


# -- runs ------------------------------------------------------------------------------------------


def start_run(session: Session, tenant_id: str, account_id: str, **values: Any) -> FlowRun | None:
    """Insert an active run; None when the contact already has an active run of this flow."""
    run = FlowRun(tenant_id=tenant_id, account_id=account_id, active_key=ACTIVE, **values)
    try:
        with session.begin_nested():
            session.add(run)
    except IntegrityError as exc:
        if is_duplicate_key(exc):
            return None
        raise
    return run


def get_run(session: Session, tenant_id: str, run_id: str) -> FlowRun | None:
    return session.scalar(select(FlowRun).where(FlowRun.tenant_id == tenant_id, FlowRun.id == run_id))


def waiting_run(
    session: Session, tenant_id: str, account_id: str, contact_igsid: str, *, for_update: bool = False
) -> FlowRun | None:
    """The contact's most recent run waiting for them (``for_update``: locked with its index range)."""
    query = (
        select(FlowRun)
        .where(
            FlowRun.tenant_id == tenant_id,
            FlowRun.account_id == account_id,
            FlowRun.contact_igsid == contact_igsid,
            FlowRun.status == "waiting",
        )
        .order_by(FlowRun.updated_at.desc(), FlowRun.id.desc())
        .limit(1)
    )
    return session.scalar(query.with_for_update() if for_update else query)


def lock_run(session: Session, tenant_id: str, run_id: str) -> FlowRun | None:
    """The run, locked by primary key and read afresh (its advance is one at a time)."""
    return session.scalar(
        select(FlowRun)
        .where(FlowRun.tenant_id == tenant_id, FlowRun.id == run_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def runs_of_flow(session: Session, tenant_id: str, flow_id: str, *, limit: int = 100) -> Sequence[FlowRun]:
    return session.scalars(
        select(FlowRun)
        .where(FlowRun.tenant_id == tenant_id, FlowRun.flow_id == flow_id)
        .order_by(FlowRun.created_at.desc())
        .limit(limit)
    ).all()


# -- timers ----------------------------------------------------------------------------------------


def add_timer(
    session: Session,
    tenant_id: str,
    account_id: str,
    *,
    run_id: str,
    step_id: str,
    seq: int,
    purpose: str,
    due_at: datetime,
) -> FlowTimer:
    timer = FlowTimer(
        tenant_id=tenant_id,
        account_id=account_id,
        run_id=run_id,
        step_id=step_id,
        seq=seq,
        purpose=purpose,
        due_at=due_at,
        status="pending",
    )
    session.add(timer)
    return timer


def cancel_timers(session: Session, tenant_id: str, run_id: str) -> None:
    session.execute(
        update(FlowTimer)
        .where(FlowTimer.tenant_id == tenant_id, FlowTimer.run_id == run_id, FlowTimer.status == "pending")
        .values(status="cancelled")
        .execution_options(synchronize_session=False)
    )


def due_timers(
    session: Session, *, now: datetime, limit: int, tenant_ids: Sequence[str] | None = None
) -> Sequence[FlowTimer]:
    """Pending timers due by ``now``, oldest first (platform-wide unless ``tenant_ids``)."""
    query = select(FlowTimer).where(FlowTimer.status == "pending", FlowTimer.due_at <= now)
    if tenant_ids is not None:
        query = query.where(FlowTimer.tenant_id.in_(tenant_ids))
    return session.scalars(query.order_by(FlowTimer.due_at, FlowTimer.id).limit(limit)).all()


def claim_timer(session: Session, tenant_id: str, timer_id: int, *, now: datetime) -> bool:
    """Move a pending timer to ``fired``; True only for the one caller whose UPDATE changed it."""
    result = session.execute(
        update(FlowTimer)
        .where(FlowTimer.tenant_id == tenant_id, FlowTimer.id == timer_id, FlowTimer.status == "pending")
        .values(status="fired", fired_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def get_timer(session: Session, tenant_id: str, timer_id: int) -> FlowTimer | None:
    return session.scalar(select(FlowTimer).where(FlowTimer.tenant_id == tenant_id, FlowTimer.id == timer_id))


# -- step analytics --------------------------------------------------------------------------------


_STEP_KEY = ["tenant_id", "flow_id", "version", "step_id", "outcome", "reason"]


def count_step(
    session: Session,
    tenant_id: str,
    *,
    flow_id: str,
    version: int,
    step_id: str,
    outcome: str,
    reason: str | None,
    day: date,
) -> None:
    """One more ``outcome`` of the step, in the totals and in ``day``'s counters (two upserts)."""
    key = {
        "tenant_id": tenant_id,
        "flow_id": flow_id,
        "version": version,
        "step_id": step_id[:64],
        "outcome": outcome,
        "reason": (reason or "")[:32],
    }
    _bump(session, FlowStepStat.__table__, key, _STEP_KEY)  # type: ignore[arg-type]
    _bump(session, FlowStepDaily.__table__, {**key, "day": day}, [*_STEP_KEY, "day"])  # type: ignore[arg-type]


def _bump(session: Session, table: Table, key: dict[str, Any], conflict: list[str]) -> None:
    upsert(
        session,
        table,
        {**key, "count": 1},
        conflict=conflict,
        update={"count": lambda new: table.c.count + new.count},
    )


def step_stats(session: Session, tenant_id: str, flow_id: str | None = None) -> Sequence[FlowStepStat]:
    query = select(FlowStepStat).where(FlowStepStat.tenant_id == tenant_id)
    if flow_id is not None:
        query = query.where(FlowStepStat.flow_id == flow_id)
    return session.scalars(
        query.order_by(FlowStepStat.flow_id, FlowStepStat.version, FlowStepStat.step_id, FlowStepStat.outcome)
    ).all()


def step_days(
    session: Session, tenant_id: str, since: date, until: date, flow_id: str | None = None
) -> Sequence[FlowStepDaily]:
    """The daily step counters of ``[since, until]`` (days inclusive), of one flow or all."""
    query = select(FlowStepDaily).where(
        FlowStepDaily.tenant_id == tenant_id, FlowStepDaily.day >= since, FlowStepDaily.day <= until
    )
    if flow_id is not None:
        query = query.where(FlowStepDaily.flow_id == flow_id)
    return session.scalars(
        query.order_by(
            FlowStepDaily.day,
            FlowStepDaily.flow_id,
            FlowStepDaily.version,
            FlowStepDaily.step_id,
            FlowStepDaily.outcome,
            FlowStepDaily.reason,
        )
    ).all()


# -- retention -------------------------------------------------------------------------------------


def finished_runs_before(session: Session, tenant_id: str, cutoff: datetime, limit: int) -> list[str]:
    """Ids of the tenant's runs that ended before ``cutoff`` (an active run has no ``ended_at``)."""
    return list(
        session.scalars(
            select(FlowRun.id)
            .where(
                FlowRun.tenant_id == tenant_id,
                FlowRun.ended_at < cutoff,
                FlowRun.active_key.is_(None),
            )
            .order_by(FlowRun.ended_at, FlowRun.id)
            .limit(limit)
        )
    )


def delete_finished_runs(session: Session, tenant_id: str, run_ids: Sequence[str]) -> tuple[int, int]:
    """Delete these finished runs and their timers; ``(runs, timers)`` deleted. The run's condition is
    repeated, so an id that is somehow active again is left alone."""
    if not run_ids:
        return 0, 0
    timers = session.execute(
        delete(FlowTimer)
        .where(
            FlowTimer.tenant_id == tenant_id,
            FlowTimer.run_id.in_(
                select(FlowRun.id).where(
                    FlowRun.tenant_id == tenant_id, FlowRun.id.in_(run_ids), FlowRun.active_key.is_(None)
                )
            ),
        )
        .execution_options(synchronize_session=False)
    )
    runs = session.execute(
        delete(FlowRun)
        .where(FlowRun.tenant_id == tenant_id, FlowRun.id.in_(run_ids), FlowRun.active_key.is_(None))
        .execution_options(synchronize_session=False)
    )
    return int(getattr(runs, "rowcount", 0)), int(getattr(timers, "rowcount", 0))
