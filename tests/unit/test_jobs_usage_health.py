"""Usage roll-over and queue metrics (SQLite, fakes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from replyflow.adapters.sqs_admin import BrokerQueueStats
from replyflow.db.engine import session_factory
from replyflow.db.models import OutboundMessage, UsageCounter
from replyflow.services.jobs.common import Deadline, JobResult, emit_metrics, summary_line
from replyflow.services.jobs.health import run_queue_metrics
from replyflow.services.jobs.usage import period_bounds, previous_period, run_usage_rollover
from tests.unit.test_jobs_fakes import RecordingSink, add_tenant

NOW = datetime(2026, 7, 1, 0, 5)  # five minutes into July


@pytest.fixture
def sessions(sqlite_url: str) -> sessionmaker[Session]:
    factory = session_factory(sqlite_url)
    with factory() as session:
        add_tenant(session, "t1")
        add_tenant(session, "t2")
        n = 0

        def sent(tenant: str, kind: str, at: datetime, status: str = "sent") -> None:
            nonlocal n
            n += 1
            session.add(
                OutboundMessage(
                    tenant_id=tenant,
                    account_id="a",
                    kind=kind,
                    dedupe_key=f"k{n}",
                    payload={},
                    status=status,
                    created_at=at,
                    sent_at=at if status == "sent" else None,
                )
            )

        for day in (3, 10, 30):
            sent("t1", "private_reply", datetime(2026, 6, day, 12))
        sent("t1", "dm", datetime(2026, 6, 30, 23, 59, 59))
        sent("t1", "public_reply", datetime(2026, 6, 15))  # a comment, not a DM
        sent("t1", "dm", datetime(2026, 6, 20), status="failed")
        sent("t1", "private_reply", datetime(2026, 7, 1, 0, 1))
        sent("t2", "dm", datetime(2026, 5, 31, 23))
        # The sender counted June for t1 with one too few (a lost increment).
        session.add(UsageCounter(tenant_id="t1", period="2026-06", dms_sent=3))
        session.commit()
    return factory


def _counters(sessions: sessionmaker[Session]) -> dict[tuple[str, str], int]:
    with sessions() as session:
        return {(c.tenant_id, c.period): c.dms_sent for c in session.scalars(select(UsageCounter))}


def test_periods() -> None:
    assert period_bounds("2026-12") == (datetime(2026, 12, 1), datetime(2027, 1, 1))
    assert previous_period("2026-01") == "2025-12"


def test_rollover_creates_current_period_and_reconciles_with_the_ledger(
    sessions: sessionmaker[Session],
) -> None:
    result = run_usage_rollover(sessions, now=NOW, deadline=Deadline.unlimited())
    assert _counters(sessions) == {("t1", "2026-06"): 4, ("t1", "2026-07"): 1, ("t2", "2026-07"): 0}
    assert result.counts["counters_reconciled"] == 1
    assert result.counts["counters_created"] == 2
    assert result.details["adjustments"] == [{"tenant_id": "t1", "period": "2026-06", "was": 3, "ledger": 4}]

    again = run_usage_rollover(sessions, now=NOW, deadline=Deadline.unlimited())
    assert again.counts["counters_reconciled"] == again.counts["counters_created"] == 0
    assert again.counts["counters_in_sync"] == 3


class Inspector:
    def stats(self) -> dict[str, dict[str, Any]]:
        return {
            "events-high": {"visible": 3, "in_flight": 1, "delayed": 0, "oldest_age_seconds": 12.5, "dlq": 2},
            "sends-low": {"visible": 0, "in_flight": 0, "delayed": 4, "oldest_age_seconds": 0.0, "dlq": None},
        }


def test_queue_metrics_publish_depth_age_and_dlq_per_queue() -> None:
    sink = RecordingSink()
    result = run_queue_metrics(BrokerQueueStats(Inspector()), sink, deadline=Deadline.unlimited())
    assert sink.value("QueueVisibleMessages", queue="events-high") == 3
    assert sink.value("QueueInFlightMessages", queue="events-high") == 1
    assert sink.value("QueueOldestMessageAge", queue="events-high") == 12.5
    assert sink.value("QueueDlqMessages", queue="events-high") == 2
    assert sink.value("QueueDelayedMessages", queue="sends-low") == 4
    assert sink.value("QueueDlqMessages", queue="sends-low") is None
    assert result.counts == {"queues": 2, "visible_messages": 3, "dlq_messages": 2}
    assert result.details["queues"]["sends-low"]["delayed"] == 4


def test_summary_line_and_job_metrics() -> None:
    result = JobResult("retention")
    result.counts.update(rows_deleted=10, chunks=2)
    result.duration_seconds = 1.5
    assert summary_line(result) == "job retention done in 1.50s: chunks=2 rows_deleted=10"
    sink = RecordingSink()
    emit_metrics(result, sink)
    assert sink.value("RowsDeleted", job="retention") == 10
    assert sink.value("JobDuration", job="retention") == 1500
