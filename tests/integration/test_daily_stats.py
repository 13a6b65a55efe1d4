"""The stats rollup stays exact under concurrent writers on MariaDB (one upsert per decision)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from replyflow.db.engine import session_factory, session_scope
from replyflow.db.models import AutomationLog, DailyStat
from replyflow.db.repositories import log_queries
from replyflow.db.repositories import logs as logs_repo

WRITERS, EACH = 8, 25


def test_concurrent_decisions_are_all_counted(mysql_url: str) -> None:
    sessions = session_factory(mysql_url, pool_size=WRITERS)

    def write(worker: int) -> None:
        for i in range(EACH):
            with session_scope(sessions) as session:
                for action in ("matched", "queued"):
                    logs_repo.automation(
                        session,
                        "tstats",
                        "acc1",
                        automation_id="auto1",
                        event_key=f"{worker}-{i}",
                        action=action,
                    )

    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(write, range(WRITERS)))

    with session_scope(sessions) as session:
        logged = len(
            session.scalars(select(AutomationLog.id).where(AutomationLog.tenant_id == "tstats")).all()
        )
        day = session.scalar(select(DailyStat.day).where(DailyStat.tenant_id == "tstats"))
        assert day is not None
        counts = log_queries.daily_counts(session, "tstats", day, day)
        other = log_queries.daily_counts(session, "someone-else", day, day)
    assert logged == WRITERS * EACH * 2
    assert {(c.automation_id, c.action): c.count for c in counts} == {
        ("auto1", "matched"): WRITERS * EACH,
        ("auto1", "queued"): WRITERS * EACH,
    }
    assert other == []
