"""Retention of flow runs: a tenant's finished runs that ended before its plan's cutoff go, with their
timers; finished runs within the retention stay, and an active run stays however old. On SQLite here;
on MariaDB in ``tests/integration/test_jobs_retention_flow_runs_mariadb.py`` (same scenario)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import select

from replyflow.db.engine import session_factory
from replyflow.db.models import FlowRun, FlowStepStat, FlowTimer
from replyflow.services.jobs.common import Deadline
from replyflow.services.jobs.retention import run_retention
from tests.unit.test_jobs_fakes import add_tenant

NOW = datetime(2026, 3, 20, 10, 0)
OLD = datetime(2026, 3, 5, 12, 0)  # past the free plan's 7 days, within the pro plan's 30
NEW = datetime(2026, 3, 18, 12, 0)


def _run(tenant_id: str, name: str, created: datetime, ended: datetime | None) -> list[object]:
    run = FlowRun(
        id=f"{name}-{secrets.token_hex(4)}",
        tenant_id=tenant_id,
        account_id="acct",
        flow_id="flow",
        version=1,
        contact_igsid=name,
        status="completed" if ended else "waiting",
        active_key=None if ended else "1",
        step_id="s",
        seq=2,
        private_reply_used=True,
        end_reason="completed" if ended else None,
        ended_at=ended,
        created_at=created,
        updated_at=ended or created,
    )
    timer = FlowTimer(
        tenant_id=tenant_id,
        account_id="acct",
        run_id=run.id,
        step_id="w",
        seq=1,
        purpose="wait_timeout",
        due_at=created + timedelta(hours=1),
        status="cancelled" if ended else "pending",
    )
    return [run, timer]


def _left(url: str, tenant_id: str) -> tuple[list[str], int]:
    with session_factory(url)() as session:
        runs = sorted(
            r.contact_igsid for r in session.scalars(select(FlowRun).where(FlowRun.tenant_id == tenant_id))
        )
        timers = len(session.scalars(select(FlowTimer).where(FlowTimer.tenant_id == tenant_id)).all())
    return runs, timers


def scenario(url: str) -> None:
    sessions = session_factory(url)
    free, pro = f"t-free-{secrets.token_hex(3)}", f"t-pro-{secrets.token_hex(3)}"
    with sessions() as session:
        for tenant_id, plan in ((free, "free"), (pro, "pro")):
            add_tenant(session, tenant_id, plan)
            for name, created, ended in (
                ("done-old", OLD - timedelta(days=1), OLD),
                ("done-old-2", OLD - timedelta(days=2), OLD + timedelta(hours=1)),
                ("done-new", OLD, NEW),
                ("active-old", OLD - timedelta(days=60), None),
            ):
                session.add_all(_run(tenant_id, name, created, ended))
            session.add(
                FlowStepStat(
                    tenant_id=tenant_id,
                    flow_id="flow",
                    version=1,
                    step_id="s",
                    outcome="sent",
                    reason="",
                    count=3,
                )
            )
        session.commit()

    result = run_retention(
        sessions, now=NOW, deadline=Deadline.unlimited(), chunk_size=1, tenant_ids=[free, pro]
    )

    assert result.details["deleted_per_tenant"][free] == {
        "flow_runs": 2,
        "flow_timers": 2,
        "kept_unarchived": 0,
    }
    assert _left(url, free) == (["active-old", "done-new"], 2)
    assert _left(url, pro) == (["active-old", "done-new", "done-old", "done-old-2"], 4)  # 30 days
    with sessions() as session:
        stats = session.scalars(select(FlowStepStat.count).where(FlowStepStat.tenant_id == free)).all()
    assert stats == [3]  # counters are history, not a person's data

    stopped = run_retention(sessions, now=NOW + timedelta(days=60), deadline=Deadline(0), tenant_ids=[free])
    assert stopped.stopped_early
    again = run_retention(
        sessions, now=NOW + timedelta(days=60), deadline=Deadline.unlimited(), tenant_ids=[free]
    )
    assert again.details["deleted_per_tenant"][free]["flow_runs"] == 1  # done-new; the active run stays
    assert _left(url, free) == (["active-old"], 1)


def test_finished_flow_runs_are_pruned_by_plan_retention_on_sqlite(sqlite_url: str) -> None:
    scenario(sqlite_url)
