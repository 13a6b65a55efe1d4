"""Partitioned logs on the real MariaDB: day partitions kept ahead, a partition dropped only when every
tenant's rows in it are expired and archived, chunked deletes for the rest (a tenant that shares a
partition with a longer retention, rows not archived yet), and the dedupe keys (``dedupe_claims``)
intact across partitions and retention.

Each test has a database of its own; its past days get partitions of their own (``split_history``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from replyflow.adapters.archive_store import DirectoryArchiveStore
from replyflow.clock import utcnow
from replyflow.db.engine import session_factory
from replyflow.db.repositories import ledger
from replyflow.db.repositories import partitions as parts
from replyflow.services.jobs.archive import run_archive
from replyflow.services.jobs.common import Deadline
from replyflow.services.jobs.partitions import run_partition_maintenance
from replyflow.services.jobs.retention import run_retention
from tests.conftest import fresh_mysql_database

pytestmark = pytest.mark.integration

TODAY = utcnow().date()  # the migration's first day partition is the day it ran (UTC)
NOW = datetime.combine(TODAY, time(9, 0))
FIRST = TODAY - timedelta(days=30)
PLANS = {"short": 7, "long": 28}
TENANTS = {"tenant-a": "short", "tenant-b": "short", "tenant-c": "long"}
# Days of rows (all before every cutoff of the short plan, today - 7):
SHARED_SHORT = TODAY - timedelta(days=25)  # tenants a and b: dropped once both are archived
SHARED_LONG = TODAY - timedelta(days=24)  # tenants a and c (c keeps 28 days): kept, a chunk-deleted
ONLY_A = TODAY - timedelta(days=23)  # tenant a only


@pytest.fixture
def sessions() -> Iterator[sessionmaker[Session]]:
    with fresh_mysql_database("rf_part") as url:
        factory = session_factory(url, 2)
        with factory() as session:
            for table in parts.PARTITIONED:
                parts.split_history(session, table, FIRST)
            for code, days in PLANS.items():
                session.execute(
                    sa.text(
                        "INSERT INTO plans (code, name, price_cents, max_accounts, max_automations,"
                        " monthly_dm_quota, log_retention_days, api_requests_per_minute, queue_priority)"
                        " VALUES (:c, :c, 0, 1, 1, 1, :d, 60, 'default')"
                    ),
                    {"c": code, "d": days},
                )
            for tenant, plan in TENANTS.items():
                session.execute(
                    sa.text(
                        "INSERT INTO tenants (id, name, slug, plan_code, status, created_at, updated_at)"
                        " VALUES (:t, :t, :t, :p, 'active', :now, :now)"
                    ),
                    {"t": tenant, "p": plan, "now": NOW},
                )
            session.commit()
        yield factory


def _logs(session: Session, tenant: str, day: date, n: int) -> None:
    for i in range(n):
        at = datetime.combine(day, time(1, 0)) + timedelta(minutes=i)
        session.execute(
            sa.text(
                "INSERT INTO reply_logs (tenant_id, account_id, kind, status, text, created_at)"
                " VALUES (:t, 'acct', 'dm', 'sent', 'hello', :at)"
            ),
            {"t": tenant, "at": at},
        )
        session.execute(
            sa.text(
                "INSERT INTO automation_logs (tenant_id, account_id, action, created_at)"
                " VALUES (:t, 'acct', 'matched', :at)"
            ),
            {"t": tenant, "at": at},
        )


def _count(sessions: sessionmaker[Session], table: str, tenant: str) -> int:
    with sessions() as session:
        return int(
            session.scalar(sa.text(f"SELECT COUNT(*) FROM {table} WHERE tenant_id = :t"), {"t": tenant})
        )


def _names(sessions: sessionmaker[Session], table: str) -> list[str]:
    with sessions() as session:
        return [p.name for p in parts.partitions(session, table)]


def _about(estimate: int, rows: int) -> bool:
    """A dropped partition's rows are counted from InnoDB's statistics (``Partition.rows_estimate``,
    no scan before a drop): for partitions this small they are exact but for a row the background
    statistics may have counted twice (seen once: 9 for 8). The row counts themselves are exact."""
    return abs(estimate - rows) <= 1


def _at(monkeypatch: pytest.MonkeyPatch, moment: datetime) -> None:
    monkeypatch.setattr(ledger, "utcnow", lambda: moment)


def test_the_job_keeps_day_partitions_ahead_and_rows_land_in_their_day(
    sessions: sessionmaker[Session],
) -> None:
    later = NOW + timedelta(days=20)
    first = run_partition_maintenance(sessions, now=later, deadline=Deadline.unlimited())
    assert first.counts["tables_partitioned"] == 4
    # The migration made 14 days from today (today + 13); the job adds the days up to later + 14.
    assert first.counts["partitions_added"] == 4 * 21
    again = run_partition_maintenance(sessions, now=later, deadline=Deadline.unlimited())
    assert again.counts["partitions_added"] == 0
    for table in parts.PARTITIONED:
        names = _names(sessions, table)
        assert names[0] == parts.HISTORY
        assert names[-1] == parts.FUTURE
        assert parts.day_name(later.date() + timedelta(days=14)) in names
        assert parts.day_name(later.date() + timedelta(days=15)) not in names
    day = later.date() + timedelta(days=10)
    with sessions() as session:
        _logs(session, "tenant-a", day, 3)
        session.commit()
        in_day = session.scalar(sa.text(f"SELECT COUNT(*) FROM reply_logs PARTITION ({parts.day_name(day)})"))
        in_future = session.scalar(sa.text("SELECT COUNT(*) FROM reply_logs PARTITION (p_future)"))
    assert (in_day, in_future) == (3, 0)


def test_a_partition_is_dropped_only_when_every_tenant_in_it_is_expired_and_archived(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    with sessions() as session:
        _logs(session, "tenant-a", SHARED_SHORT, 5)
        _logs(session, "tenant-b", SHARED_SHORT, 4)
        _logs(session, "tenant-a", SHARED_LONG, 6)
        _logs(session, "tenant-c", SHARED_LONG, 7)
        _logs(session, "tenant-a", ONLY_A, 3)
        session.commit()
    store = DirectoryArchiveStore(tmp_path / "archive")
    unlimited = Deadline.unlimited()

    # Nothing archived: nothing is dropped or deleted.
    first = run_retention(sessions, now=NOW, deadline=unlimited)
    assert first.counts["rows_removed"] == 0  # (empty day partitions past every cutoff are dropped)
    assert _count(sessions, "reply_logs", "tenant-a") == 14

    # Tenant a archived, b not: a's own day goes as a partition; the shared days keep b's and c's rows
    # and lose a's by chunked deletes.
    run_archive(sessions, store, now=NOW, deadline=unlimited, tenant_ids=["tenant-a"])
    second = run_retention(sessions, now=NOW, deadline=unlimited)
    assert _about(second.counts["rows_dropped_reply_logs"], 3)  # ONLY_A
    assert _about(second.counts["rows_dropped_automation_logs"], 3)
    assert second.counts["deleted_reply_logs"] == 5 + 6  # a's rows in the two shared days
    assert _count(sessions, "reply_logs", "tenant-a") == 0
    assert _count(sessions, "reply_logs", "tenant-b") == 4
    assert _count(sessions, "reply_logs", "tenant-c") == 7
    names = _names(sessions, "reply_logs")
    assert parts.day_name(ONLY_A) not in names
    assert parts.day_name(SHARED_SHORT) in names
    assert parts.day_name(SHARED_LONG) in names

    # Everyone archived: b's day goes whole; c keeps 28 days, so its day stays, rows untouched.
    run_archive(sessions, store, now=NOW, deadline=unlimited)
    third = run_retention(sessions, now=NOW, deadline=unlimited)
    assert _about(third.counts["rows_dropped_reply_logs"], 4)
    assert third.counts["deleted_reply_logs"] == 0
    assert _count(sessions, "reply_logs", "tenant-b") == 0
    assert _count(sessions, "reply_logs", "tenant-c") == 7
    names = _names(sessions, "reply_logs")
    assert parts.day_name(SHARED_SHORT) not in names
    assert parts.day_name(SHARED_LONG) in names

    # Once c's rows expire too (and are archived), their day is dropped.
    much_later = NOW + timedelta(days=10)
    run_archive(sessions, store, now=much_later, deadline=unlimited)
    fourth = run_retention(sessions, now=much_later, deadline=unlimited)
    assert _about(fourth.counts["rows_dropped_reply_logs"], 7)
    assert _count(sessions, "reply_logs", "tenant-c") == 0


def test_rows_of_a_tenant_without_archive_keep_the_partition_with_the_archive_off_it_goes(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        _logs(session, "tenant-b", SHARED_SHORT, 4)
        session.commit()
    kept = run_retention(sessions, now=NOW, deadline=Deadline.unlimited())
    assert kept.counts["rows_dropped"] == 0
    assert kept.counts["rows_kept_unarchived"] == 8
    dropped = run_retention(sessions, now=NOW, deadline=Deadline.unlimited(), require_archive=False)
    assert _about(dropped.counts["rows_dropped"], 8)
    assert _count(sessions, "reply_logs", "tenant-b") == 0
    assert _count(sessions, "automation_logs", "tenant-b") == 0
    assert dropped.counts["rows_deleted"] == 0


def test_dedupe_holds_across_partitions_and_retention(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    old = datetime.combine(SHARED_SHORT, time(2, 0))
    _at(monkeypatch, old)
    with sessions() as session:
        assert ledger.record_event(session, "tenant-a", "acct", "mid-1", kind="message", occurred_at=old)
        sent = ledger.add_outbound(
            session,
            "tenant-a",
            "acct",
            automation_id="au",
            kind="dm",
            dedupe_key="mid-1:au",
            comment_id=None,
            recipient_id="u1",
            event_key="mid-1",
            payload={"text": "hi"},
            priority="default",
            status="sent",
        )
        parked = ledger.add_outbound(
            session,
            "tenant-a",
            "acct",
            automation_id="au",
            kind="private_reply",
            dedupe_key="c-9",
            comment_id="c-9",
            recipient_id="u1",
            event_key="c-9",
            payload={"text": "hi"},
            priority="default",
            status="parked",
        )
        assert sent is not None
        assert parked is not None
        session.commit()
    # A redelivery a day later lands (by time) in another partition: the claim still refuses it.
    _at(monkeypatch, old + timedelta(days=1))
    with sessions() as session:
        assert not ledger.record_event(session, "tenant-a", "acct", "mid-1", kind="message", occurred_at=old)
        again = ledger.add_outbound(
            session,
            "tenant-a",
            "acct",
            automation_id="au",
            kind="dm",
            dedupe_key="mid-1:au",
            comment_id=None,
            recipient_id="u1",
            event_key="mid-1",
            payload={"text": "hi"},
            priority="default",
            status="queued",
        )
        assert again is None
        assert ledger.seen_event_keys(session, "tenant-a", "acct", ["mid-1", "mid-2"]) == {"mid-1"}
        session.commit()
    assert _count(sessions, "inbound_events", "tenant-a") == 1
    assert _count(sessions, "outbound_messages", "tenant-a") == 2

    # Past retention without an archive requirement: the inbound day partition is dropped, the sends'
    # partition is kept (one is parked), the sent row goes by chunked delete. Claims go after their
    # rows; the parked send's claim stays while the row does.
    result = run_retention(sessions, now=NOW, deadline=Deadline.unlimited(), require_archive=False)
    assert _about(result.counts["rows_dropped_inbound_events"], 1)
    assert result.counts["deleted_outbound_messages"] == 1
    assert result.counts["claims_deleted"] == 2
    assert result.counts["claims_kept"] == 1
    with sessions() as session:
        left = session.execute(sa.text("SELECT kind, claim_key FROM dedupe_claims")).all()
        assert [tuple(r) for r in left] == [("private_reply", "c-9")]
        again = ledger.add_outbound(
            session,
            "tenant-a",
            "acct",
            automation_id="au",
            kind="private_reply",
            dedupe_key="c-9",
            comment_id="c-9",
            recipient_id="u1",
            event_key="c-9",
            payload={"text": "hi"},
            priority="default",
            status="queued",
        )
        assert again is None


def test_the_logs_page_reads_recent_windows_first_and_misses_nothing(sessions: sessionmaker[Session]) -> None:
    from replyflow.db.repositories import log_queries
    from replyflow.db.repositories.log_queries import Keyset, LogFilter

    spread = {TODAY: 3, TODAY - timedelta(days=5): 10, TODAY - timedelta(days=20): 60}
    with sessions() as session:
        for day, n in spread.items():
            _logs(session, "tenant-a", day, n)
        _logs(session, "tenant-a", FIRST - timedelta(days=20), 5)  # in p_history, beyond every window
        _logs(session, "tenant-b", TODAY, 7)
        session.commit()
        expected = [
            int(i)
            for i in session.scalars(
                sa.text(
                    "SELECT id FROM reply_logs WHERE tenant_id = 'tenant-a' ORDER BY created_at DESC, id DESC"
                )
            )
        ]
    seen: list[int] = []
    after: Keyset | None = None
    with sessions() as session:
        while True:
            page, more = log_queries.reply_logs(session, "tenant-a", LogFilter(), after, 7)
            seen += [row.id for row in page]
            if not more:
                break
            after = Keyset(page[-1].created_at, page[-1].id)
        assert log_queries.reply_logs(session, "tenant-z", LogFilter(), None, 7) == ([], False)
    assert seen == expected
    assert len(seen) == 78


def test_every_droppable_day_goes_in_one_statement_per_table(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Several expired, archived days are dropped by one ``ALTER TABLE ... DROP PARTITION`` per table;
    a day that a longer-retention tenant shares stays, whatever its neighbours."""
    short_days = [TODAY - timedelta(days=d) for d in (26, 25, 23, 22, 20)]
    with sessions() as session:
        for day in short_days:
            _logs(session, "tenant-a", day, 2)
            _logs(session, "tenant-b", day, 1)
        _logs(session, "tenant-c", SHARED_LONG, 4)
        _logs(session, "tenant-a", SHARED_LONG, 3)
        session.commit()
    run_archive(sessions, DirectoryArchiveStore(tmp_path / "archive"), now=NOW, deadline=Deadline.unlimited())
    before = {t: _names(sessions, t) for t in parts.PARTITIONED}
    statements: list[str] = []
    engine = sessions.kw["bind"]

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        if "DROP PARTITION" in statement:
            statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        result = run_retention(sessions, now=NOW, deadline=Deadline.unlimited())
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert sorted(s.split()[2] for s in statements) == sorted(parts.PARTITIONED)  # one per table
    cutoff = TODAY - timedelta(days=7)
    for table in parts.PARTITIONED:
        gone = set(before[table]) - set(_names(sessions, table))
        past = {p for p in before[table] if p.startswith("p2") and p < parts.day_name(cutoff)}
        kept = {parts.day_name(SHARED_LONG)} if table in ("reply_logs", "automation_logs") else set()
        assert gone == (past | {parts.HISTORY}) - kept, table  # the ledgers' days are empty: all go
    assert _about(result.counts["rows_dropped_reply_logs"], 3 * len(short_days))
    assert result.counts["deleted_reply_logs"] == 3  # tenant a's rows in the day c keeps
    assert _count(sessions, "reply_logs", "tenant-a") == 0
    assert _count(sessions, "reply_logs", "tenant-b") == 0
    assert _count(sessions, "reply_logs", "tenant-c") == 4
    assert parts.day_name(SHARED_LONG) in _names(sessions, "reply_logs")


def test_claims_go_by_ranges_in_chunks_and_a_held_one_stays(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eleven expired claims in chunks of 3: the chunks whose rows are all gone are deleted as one
    range each, the chunk with a parked send's claim by ids, keeping that one; a tenant's claims
    never take another's, and claims after the cutoff stay."""
    base = datetime.combine(SHARED_SHORT, time(3, 0))
    with sessions() as session:
        for i in range(10):
            _at(monkeypatch, base + timedelta(minutes=i))
            for tenant in ("tenant-a", "tenant-b"):
                assert ledger.record_event(
                    session, tenant, "acct", f"m-{i}", kind="message", occurred_at=base
                )
        _at(monkeypatch, base + timedelta(minutes=4, seconds=30))
        parked = ledger.add_outbound(
            session,
            "tenant-a",
            "acct",
            automation_id="au",
            kind="private_reply",
            dedupe_key="c-1",
            comment_id="c-1",
            recipient_id="u1",
            event_key="c-1",
            payload={"text": "hi"},
            priority="default",
            status="parked",
        )
        assert parked is not None
        _at(monkeypatch, NOW - timedelta(days=1))  # within retention: stays
        assert ledger.record_event(session, "tenant-a", "acct", "recent", kind="message", occurred_at=NOW)
        session.commit()
    result = run_retention(
        sessions, now=NOW, deadline=Deadline.unlimited(), require_archive=False, chunk_size=3
    )
    assert _about(result.counts["rows_dropped_inbound_events"], 20)
    assert result.counts["claims_deleted"] == 10 + 10
    assert result.counts["claims_kept"] == 1
    with sessions() as session:
        left = session.execute(sa.text("SELECT tenant_id, claim_key FROM dedupe_claims ORDER BY id")).all()
    assert [tuple(r) for r in left] == [("tenant-a", "c-1"), ("tenant-a", "recent")]


def test_the_first_page_of_a_busy_tenant_is_one_statement(sessions: sessionmaker[Session]) -> None:
    from replyflow.db.repositories import log_queries
    from replyflow.db.repositories.log_queries import LogFilter

    with sessions() as session:
        start = utcnow().replace(microsecond=0) - timedelta(hours=2)
        for i in range(9):
            session.execute(
                sa.text(
                    "INSERT INTO reply_logs (tenant_id, account_id, kind, status, text, created_at)"
                    " VALUES ('tenant-a', 'acct', 'dm', 'sent', 'hello', :at)"
                ),
                {"at": start + timedelta(minutes=i)},
            )
        _logs(session, "tenant-a", TODAY + timedelta(days=2), 1)  # dated ahead: still first
        session.commit()
    selects: list[str] = []
    engine = sessions.kw["bind"]

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        selects.append(statement)

    with sessions() as session:
        sa.event.listen(engine, "before_cursor_execute", record)
        try:
            page, more = log_queries.reply_logs(session, "tenant-a", LogFilter(), None, 5)
        finally:
            sa.event.remove(engine, "before_cursor_execute", record)
    assert len(selects) == 1
    assert more
    assert page[0].created_at.date() == TODAY + timedelta(days=2)
    assert [r.created_at for r in page[1:]] == [start + timedelta(minutes=i) for i in (8, 7, 6, 5)]
