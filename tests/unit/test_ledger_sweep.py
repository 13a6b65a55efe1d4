"""The ledger sweeper on SQLite with in-memory queues: rows whose job is gone are settled (``sending``
-> ``unknown``, never resent), re-published (overdue ``queued`` / ``deferred``) or released (``parked``
on an active account); each only once, at most ``limit`` per run, and the counts become metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from unittest.mock import patch

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from replyflow.adapters.crypto import TokenCipher
from replyflow.clock import utcnow
from replyflow.db.engine import session_factory, session_scope
from replyflow.db.models import InstagramAccount, OutboundMessage, ReplyLog
from replyflow.db.repositories import ledger
from replyflow.domain.messages import SendJob
from replyflow.services.jobs.common import Deadline
from replyflow.services.jobs.ledger_sweep import run_ledger_sweep, thresholds
from replyflow.services.send_reply import MAX_SQS_DELAY_SECONDS, SEND_LEASE_SECONDS, SendService
from replyflow.settings import Settings
from replyflow.wiring import jobs
from tests.support_pipeline import (
    KEY,
    DictCache,
    FakeLimiter,
    FixedClock,
    MemoryQueues,
    ScriptedGraph,
    seed_tenant,
)
from tests.unit.test_jobs_fakes import RecordingSink

NOW = utcnow().replace(microsecond=0)


@dataclass
class Ledger:
    sessions: sessionmaker[Session]
    queues: MemoryQueues
    tenant_id: str
    account_id: str
    keys: int = 0

    def add(self, status: str, age: timedelta, **values: Any) -> int:
        self.keys += 1
        with session_scope(self.sessions) as session:
            row = ledger.add_outbound(
                session,
                self.tenant_id,
                self.account_id,
                automation_id=None,
                kind="private_reply",
                dedupe_key=f"c{self.keys}",
                comment_id=f"c{self.keys}",
                recipient_id="u1",
                event_key=f"e{self.keys}",
                payload={"recipient": {"comment_id": f"c{self.keys}"}, "message": {"text": "hi"}},
                priority="default",
                status=status,
            )
            assert row is not None
            row_id = row.id
        with session_scope(self.sessions) as session:  # set after the insert: ``updated_at`` is stamped
            session.execute(
                update(OutboundMessage)
                .where(OutboundMessage.id == row_id)
                .values(updated_at=NOW - age, **values)
                .execution_options(synchronize_session=False)
            )
        return row_id

    def status(self, row_id: int) -> tuple[str, str | None]:
        with session_scope(self.sessions) as session:
            row = ledger.get_outbound(session, self.tenant_id, row_id)
            assert row is not None
            return row.status, row.error_code

    def published_ids(self) -> list[int]:
        return sorted(SendJob.from_json(body).outbound_id for _, body, _ in self.queues.published)

    def sweep(self, **kw: Any) -> dict[str, int]:
        kw.setdefault("deadline", Deadline.unlimited())
        kw.setdefault("now", NOW)
        return dict(run_ledger_sweep(self.sessions, self.queues, **kw).counts)


@pytest.fixture
def book(sqlite_url: str) -> Ledger:
    sessions = session_factory(sqlite_url)
    with session_scope(sessions) as session:
        seeded = seed_tenant(session, TokenCipher(KEY), token="secret-token")
    return Ledger(sessions, MemoryQueues(), seeded.tenant_id, seeded.account_id)


LEASE = timedelta(seconds=SEND_LEASE_SECONDS)
LIMITS = thresholds()
SECOND = timedelta(seconds=1)


def test_the_thresholds_come_from_the_lease_and_the_queue_delays() -> None:
    assert LIMITS["sending"] == LEASE
    assert LIMITS["queued"] == timedelta(seconds=180) + LEASE  # the sends queues' visibility timeout
    assert LIMITS["deferred"] == LIMITS["queued"] + timedelta(seconds=MAX_SQS_DELAY_SECONDS)


def test_a_sending_row_past_the_lease_becomes_unknown_with_its_logs_and_is_never_resent(book: Ledger) -> None:
    lost = book.add("sending", LEASE + SECOND)
    live = book.add("sending", LEASE - SECOND)
    counts = book.sweep()
    assert counts["sending_settled_unknown"] == 1
    assert book.status(lost) == ("unknown", "worker_lost")
    assert book.status(live) == ("sending", None)
    assert book.queues.published == []  # it may have gone out: never sent again
    with session_scope(book.sessions) as session:
        logs = session.scalars(select(ReplyLog).where(ReplyLog.outbound_message_id == lost)).all()
        assert [(log.status, log.error_code) for log in logs] == [("unknown", "worker_lost")]
    assert book.sweep()["sending_settled_unknown"] == 0  # idempotent


def test_overdue_queued_and_deferred_rows_are_republished_once(book: Ledger) -> None:
    queued_lost = book.add("queued", LIMITS["queued"] + SECOND)
    queued_fresh = book.add("queued", LIMITS["queued"] - SECOND)
    deferred_lost = book.add("deferred", LIMITS["deferred"] + SECOND, error_code="rate_limited")
    deferred_waiting = book.add("deferred", LIMITS["deferred"] - SECOND)  # its delayed job may still come
    book.add("sent", timedelta(days=1))
    counts = book.sweep()
    assert (counts["queued_republished"], counts["deferred_republished"]) == (1, 1)
    assert book.published_ids() == sorted([queued_lost, deferred_lost])
    assert {q for q, _, _ in book.queues.published} == {"sends-default"}
    assert book.status(queued_fresh) == ("queued", None)
    assert book.status(deferred_waiting) == ("deferred", None)
    again = book.sweep()  # the republished rows are stamped: not overdue again before a full threshold
    assert (again["queued_republished"], again["deferred_republished"]) == (0, 0)
    assert len(book.queues.published) == 2


def test_a_republished_job_is_sent_by_the_sender(book: Ledger) -> None:
    lost = book.add("queued", LIMITS["queued"] + SECOND)
    book.sweep()
    sender = SendService(
        sessions=book.sessions,
        graph=(graph := ScriptedGraph()),
        limiter=FakeLimiter(),
        cipher=TokenCipher(KEY),
        publisher=book.queues,
        cache=DictCache(),
        clock=FixedClock(NOW),
    )
    ((_, body),) = book.queues.take("sends-")
    assert sender.send(SendJob.from_json(body)).status == "sent"
    assert book.status(lost) == ("sent", None)
    assert len(graph.delivered) == 1


def test_parked_rows_of_an_active_account_are_released_and_others_stay(book: Ledger) -> None:
    parked = book.add("parked", timedelta(minutes=1), error_code="needs_reauth")
    with session_scope(book.sessions) as session:
        account = session.get(InstagramAccount, book.account_id)
        assert account is not None
        account.status = "needs_reauth"
    assert book.sweep()["parked_released"] == 0
    assert book.status(parked) == ("parked", "needs_reauth")
    with session_scope(book.sessions) as session:
        account = session.get(InstagramAccount, book.account_id)
        assert account is not None
        account.status = "active"  # re-connected, but the release missed the row
    assert book.sweep()["parked_released"] == 1
    assert book.status(parked) == ("queued", None)
    assert book.published_ids() == [parked]


def test_a_run_is_bounded_and_the_next_one_goes_on(book: Ledger) -> None:
    rows = [book.add("sending", LEASE + SECOND * (i + 1)) for i in range(5)]
    assert book.sweep(limit=2)["sending_settled_unknown"] == 2
    assert book.sweep(limit=2)["sending_settled_unknown"] == 2
    assert book.sweep(limit=2)["sending_settled_unknown"] == 1
    assert {book.status(r)[0] for r in rows} == {"unknown"}


def test_a_run_stops_before_its_deadline(book: Ledger) -> None:
    book.add("sending", LEASE + SECOND)
    result = run_ledger_sweep(book.sessions, book.queues, now=NOW, deadline=Deadline(0))
    assert result.stopped_early
    assert result.counts["sending_settled_unknown"] == 0


def test_the_job_runs_by_name_and_emits_its_counts(book: Ledger, sqlite_url: str) -> None:
    class Clock:
        def now(self) -> datetime:
            return NOW

    wired = RecordingSink()
    settings = Settings(database_url=sqlite_url, token_encryption_key=KEY, environment="test")
    deps = jobs.build_jobs(settings, metrics=wired, publisher=book.queues, clock=Clock())
    book.add("sending", LEASE + SECOND)
    book.add("queued", LIMITS["queued"] + SECOND)
    summary = jobs.run(deps, "ledger-sweep")
    assert summary["counts"]["sending_settled_unknown"] == 1
    assert summary["thresholds_seconds"] == {"sending": 120, "queued": 300, "deferred": 1200}
    assert wired.value("SendingSettledUnknown", job="ledger-sweep") == 1
    assert wired.value("QueuedRepublished", job="ledger-sweep") == 1
    assert wired.value("DeferredRepublished", job="ledger-sweep") == 0  # zero is a data point too
    assert wired.value("ParkedReleased", job="ledger-sweep") == 0


def test_a_republished_job_goes_out_only_after_its_row_is_committed(book: Ledger) -> None:
    ids = [book.add("queued", LIMITS["queued"] + SECOND) for _ in range(3)]
    seen_at_publish: list[datetime] = []

    class Checking(MemoryQueues):
        def publish(self, queue: str, bodies: Sequence[str], *, delay_seconds: int = 0) -> None:
            for body in bodies:  # read from another connection: only committed data is visible
                with session_scope(book.sessions) as session:
                    row = ledger.get_outbound(session, book.tenant_id, SendJob.from_json(body).outbound_id)
                    assert row is not None
                    seen_at_publish.append(row.updated_at)
            super().publish(queue, bodies, delay_seconds=delay_seconds)

    with patch("replyflow.services.jobs.ledger_sweep.CHUNK", 2):  # two chunks: 2 rows, then 1
        counts = dict(
            run_ledger_sweep(book.sessions, Checking(), now=NOW, deadline=Deadline.unlimited()).counts
        )
    assert counts["queued_republished"] == 3
    assert seen_at_publish == [NOW] * len(ids)  # the sweep's stamp was committed before each publish
