"""Archive and retention against the real MariaDB at a million log rows, with crashes injected.

The module uses a database of its own (a million rows would slow every other MariaDB test) and
generates the rows with ``INSERT ... SELECT`` from MariaDB's Sequence engine. Four tenants on three
plans (45, 60 and 90 days of retention; about a quarter of the rows expired) share the id space,
interleaved as real traffic is.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from replyflow.adapters.archive_store import DirectoryArchiveStore
from replyflow.db.engine import session_factory
from replyflow.db.models import ArchiveFile
from replyflow.services.jobs.archive import restore, run_archive
from replyflow.services.jobs.common import Deadline
from replyflow.services.jobs.policy import TenantRetention
from replyflow.services.jobs.retention import run_retention
from tests.conftest import fresh_mysql_database

pytestmark = pytest.mark.integration

NOW = datetime(2026, 6, 15, 12, 30)
START = NOW - timedelta(days=98)
REPLY_ROWS = 600_000
AUTOMATION_ROWS = 400_000
TENANTS = {"tenant-a": "t_45d", "tenant-b": "t_60d", "tenant-c": "t_90d", "tenant-d": "t_90d"}
PLANS = {"t_45d": 45, "t_60d": 60, "t_90d": 90}
TABLES = ("reply_logs", "automation_logs")


class CrashError(RuntimeError):
    pass


class StopAfter(Deadline):
    """A deadline that passes after ``checks`` checks (the job stops as if its Lambda ran out)."""

    def __init__(self, checks: int) -> None:
        super().__init__(None)
        self.left = checks

    def expired(self) -> bool:
        self.left -= 1
        return self.left < 0


@pytest.fixture(scope="module")
def big_db() -> Iterator[str]:
    with fresh_mysql_database("rf_jobs") as url:
        _generate(url)
        yield url


def _generate(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    tenants = ",".join(f"'{t}'" for t in TENANTS)
    n = len(TENANTS)
    with engine.begin() as conn:
        for code, days in PLANS.items():
            conn.execute(
                sa.text(
                    "INSERT INTO plans (code, name, price_cents, max_accounts, max_automations,"
                    " monthly_dm_quota, log_retention_days, api_requests_per_minute, queue_priority)"
                    " VALUES (:c, :c, 0, 1, 1, 1, :d, 60, 'default')"
                ),
                {"c": code, "d": days},
            )
        for tenant, plan in TENANTS.items():
            conn.execute(
                sa.text(
                    "INSERT INTO tenants (id, name, slug, plan_code, status, created_at, updated_at)"
                    " VALUES (:t, :t, :t, :p, 'active', :now, :now)"
                ),
                {"t": tenant, "p": plan, "now": NOW},
            )
        # Ids ascend with time; a row every 14 s (reply) / 21 s (automation) over ~97 days.
        conn.execute(
            sa.text(
                "INSERT INTO reply_logs (tenant_id, account_id, automation_id, outbound_message_id, kind,"
                " status, recipient_id, comment_id, text, error_code, detail, created_at)"
                f" SELECT ELT(1 + seq % {n}, {tenants}), 'acct-1', 'auto-1', seq, 'private_reply',"
                " ELT(1 + seq % 3, 'sent', 'failed', 'skipped'), CONCAT('igsid-', seq), CONCAT('c', seq),"
                " IF(seq % 997 = 0, CONCAT(:odd, seq), CONCAT('Your link #', seq, ' \u2728')),"
                " IF(seq % 3 = 1, '551', NULL), NULL,"
                f" :start + INTERVAL (seq * 14) SECOND FROM seq_1_to_{REPLY_ROWS}"
            ),
            {"start": START, "odd": 'two\nlines, "quoted" \\ \u00e9\U0001f600 #'},
        )
        conn.execute(
            sa.text(
                "INSERT INTO automation_logs (tenant_id, account_id, automation_id, event_key, action,"
                " reason, detail, created_at)"
                f" SELECT ELT(1 + seq % {n}, {tenants}), 'acct-1', 'auto-1', CONCAT('evt-', seq),"
                " ELT(1 + seq % 3, 'matched', 'skipped', 'sent'), IF(seq % 3 = 1, 'cooldown', NULL), NULL,"
                f" :start + INTERVAL (seq * 21) SECOND FROM seq_1_to_{AUTOMATION_ROWS}"
            ),
            {"start": START},
        )
    engine.dispose()


def _cutoff(tenant: str) -> datetime:
    return TenantRetention(tenant, PLANS[TENANTS[tenant]]).cutoff(NOW)


def _fingerprint(sessions: sessionmaker[Session], *, expired: bool) -> dict[tuple[str, str], tuple[int, ...]]:
    """Per tenant and table: count and sum of ids, plus a content checksum of the expired rows (the
    kept rows are only ever deleted or not, so count, id sum and max id show whether one was touched)."""
    out: dict[tuple[str, str], tuple[int, ...]] = {}
    with sessions() as session:
        for tenant in TENANTS:
            for table in TABLES:
                content = "text, status, comment_id" if table == "reply_logs" else "event_key, action, reason"
                third = (
                    f"COALESCE(SUM(CRC32(CONCAT_WS('|', id, {content}, created_at))), 0)"
                    if expired
                    else "COALESCE(MAX(id), 0)"
                )
                row = session.execute(
                    sa.text(
                        f"SELECT COUNT(*), COALESCE(SUM(id), 0), {third} FROM {table}"
                        f" WHERE tenant_id = :t AND created_at {'<' if expired else '>='} :c"
                    ),
                    {"t": tenant, "c": _cutoff(tenant)},
                ).one()
                out[(tenant, table)] = (int(row[0]), int(row[1]), int(row[2]))
    return out


def _restored_fingerprint(store: DirectoryArchiveStore) -> dict[tuple[str, str], tuple[int, ...]]:
    import zlib

    out: dict[tuple[str, str], tuple[int, ...]] = {}
    ids: set[tuple[str, int]] = set()
    for tenant in TENANTS:
        acc: dict[str, list[int]] = {t: [0, 0, 0] for t in TABLES}
        for item in restore(store, tenant, date(2000, 1, 1), date(2100, 1, 1)):
            row = item.row
            key = (item.table, row["id"])
            assert key not in ids, f"duplicate row in the archive: {key}"
            ids.add(key)
            assert row["tenant_id"] == tenant
            fields: list[Any]
            if item.table == "reply_logs":
                fields = [row["id"], row["text"], row["status"], row["comment_id"]]
            else:
                fields = [row["id"], row["event_key"], row["action"], row["reason"]]
            fields.append(row["created_at"].replace("T", " "))
            text = "|".join(str(f) for f in fields if f is not None)
            a = acc[item.table]
            a[0] += 1
            a[1] += row["id"]
            a[2] += zlib.crc32(text.encode())
        for table in TABLES:
            out[(tenant, table)] = (acc[table][0], acc[table][1], acc[table][2])
    return out


def test_archive_then_retention_at_a_million_rows_survives_crashes(
    big_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sessions = session_factory(big_db, 2)
    store = DirectoryArchiveStore(tmp_path / "archive")
    with sessions() as session:
        total = sum(session.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in TABLES)
    assert total == REPLY_ROWS + AUTOMATION_ROWS
    expired_before = _fingerprint(sessions, expired=True)
    kept_before = _fingerprint(sessions, expired=False)
    expected_rows = sum(v[0] for v in expired_before.values())
    assert 0 < expected_rows < total

    # 1. The archive crashes after writing the objects of its 5th partition, before verifying them.
    written = 0

    def crash_on_fifth(tenant_id: str, day: date) -> None:
        nonlocal written
        written += 1
        if written == 5:
            raise CrashError(f"injected crash at {tenant_id} {day}")

    with pytest.raises(CrashError):
        run_archive(
            sessions, store, now=NOW, deadline=Deadline.unlimited(), on_partition_written=crash_on_fifth
        )
    with sessions() as session:
        recorded = session.scalar(sa.select(sa.func.sum(ArchiveFile.row_count))) or 0
    assert recorded > 0

    # 2. Retention now may delete only what the four verified partitions cover.
    partial = run_retention(sessions, now=NOW, deadline=Deadline.unlimited())
    assert partial.counts["rows_deleted"] == recorded
    assert partial.counts["rows_kept_unarchived"] == expected_rows - recorded

    # 3. The re-run completes the archive (rewriting the crashed partition, duplicating nothing).
    archive = run_archive(sessions, store, now=NOW, deadline=Deadline.unlimited())
    assert archive.counts["rows_archived"] == expected_rows - recorded

    # 4. Retention stops mid-way (deadline) and the next run finishes; chunks of 5,000 rows.
    first = run_retention(sessions, now=NOW, deadline=StopAfter(40))
    assert first.stopped_early
    rest = run_retention(sessions, now=NOW, deadline=Deadline.unlimited())
    assert not rest.stopped_early
    deleted = first.counts["rows_deleted"] + rest.counts["rows_deleted"]
    assert deleted == expected_rows - recorded
    assert rest.counts["rows_kept_unarchived"] == 0
    per_tenant = rest.details["deleted_per_tenant"]
    assert set(per_tenant) <= set(TENANTS)

    # Nothing expired is left; nothing inside the window was touched.
    assert all(v[0] == 0 for v in _fingerprint(sessions, expired=True).values())
    assert _fingerprint(sessions, expired=False) == kept_before

    # The archive holds every expired row exactly once, byte for byte what the database held.
    assert _restored_fingerprint(store) == expired_before

    # Idempotent: another round finds nothing to do.
    again = run_archive(sessions, store, now=NOW, deadline=Deadline.unlimited())
    assert again.counts["rows_archived"] == 0
    assert run_retention(sessions, now=NOW, deadline=Deadline.unlimited()).counts["rows_deleted"] == 0

    # Throughput of the runs that did the bulk of the work (after the injected crash).
    retention_seconds = first.duration_seconds + rest.duration_seconds
    with capsys.disabled():
        print(
            f"\n[jobs bench] {total:,} log rows, {expected_rows:,} expired across {len(TENANTS)} tenants:"
            f" archive {archive.counts['rows_archived']:,} rows in {archive.duration_seconds:.2f}s"
            f" = {archive.counts['rows_archived'] / archive.duration_seconds:,.0f} rows/s"
            f" ({archive.counts['files_written']} files, {archive.counts['bytes_written'] / 1e6:.1f} MB gz);"
            f" retention {deleted:,} rows in {retention_seconds:.2f}s"
            f" = {deleted / retention_seconds:,.0f} rows/s"
            f" (after the crash: {partial.counts['rows_deleted']:,} rows in {partial.duration_seconds:.2f}s)"
        )


def test_late_rows_for_an_archived_day_go_to_an_additional_file(big_db: str, tmp_path: Path) -> None:
    """Rows that appear for a day already archived (and partly deleted) never rewrite its file."""
    sessions = session_factory(big_db, 2)
    store = DirectoryArchiveStore(tmp_path / "archive")
    tenant = "tenant-late"
    day = datetime(2026, 1, 10, 9, 0)
    with sessions() as session:
        session.execute(
            sa.text(
                "INSERT INTO tenants (id, name, slug, plan_code, status, created_at, updated_at)"
                " VALUES (:t, :t, :t, 't_45d', 'active', :now, :now)"
            ),
            {"t": tenant, "now": NOW},
        )
        insert = sa.text(
            "INSERT INTO automation_logs (tenant_id, account_id, action, created_at)"
            " VALUES (:t, 'a', 'sent', :at)"
        )
        for i in range(3):
            session.execute(insert, {"t": tenant, "at": day + timedelta(minutes=i)})
        session.commit()
    run_archive(sessions, store, now=NOW, deadline=Deadline.unlimited(), tenant_ids=[tenant])
    run_retention(sessions, now=NOW, deadline=Deadline.unlimited(), tenant_ids=[tenant])
    with sessions() as session:
        session.execute(insert, {"t": tenant, "at": day + timedelta(hours=5)})
        session.commit()
    second = run_archive(sessions, store, now=NOW, deadline=Deadline.unlimited(), tenant_ids=[tenant])
    assert second.counts["rows_archived"] == 1
    assert (
        run_retention(sessions, now=NOW, deadline=Deadline.unlimited(), tenant_ids=[tenant]).counts[
            "rows_deleted"
        ]
        == 1
    )
    restored = list(restore(store, tenant, day.date(), day.date()))
    assert len(restored) == 4
    assert len(list(store.list(f"tenant={tenant}/"))) == 3  # two files and the manifest
