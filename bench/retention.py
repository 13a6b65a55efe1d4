"""Retention and the logs page on MariaDB, the chunked path (before) beside partitioned logs (after),
in one run on the same data.

Setup (not timed), twice: a fresh, migrated database; in ``flat`` the log tables' partitioning is
removed (the schema before partitioned logs: every delete is a chunked delete), in ``partitioned``
the past days get day partitions (``split_history``, as the ``partitions`` job leaves them after
``SPAN_DAYS`` days). Four tenants on a 30-day plan share ``rows`` log rows (60 % ``reply_logs``, 40 %
``automation_logs``, interleaved, one every few seconds over the last ``SPAN_DAYS`` days, bulk
``INSERT ... SELECT`` from the Sequence engine), so about half are expired. Every expired
tenant-day gets an ``archive_files`` row covering its ids (a verified archive, as the archive job
records it; writing the objects themselves is the archive job's cost, not retention's).

Measured:

- ``logs page``: ``log_queries.reply_logs`` for tenant 1 (a quarter of the rows), first page of 50,
  the page after it and ``status=failed``, ``calls`` times each, before retention;
- ``retention``: ``run_retention`` with the archive required. Flat: stopped by a ``flat_seconds``
  deadline (chunked deletes at a steady rate; the rest would take rows / rate); partitioned: to the
  end. ``per_second`` = rows removed / wall time: the effective rate, rows removed counted exactly by
  the bench (``COUNT(*)`` before and after, untimed; the job's own count of dropped rows is the
  partitions' statistics, an estimate, shown as ``rows_dropped_estimate``).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from bench.stats import summarize
from bench.support import mariadb_database, ms_since, progress, rate

SPAN_DAYS = 60
RETENTION_DAYS = 30
TENANTS = ("bench-t1", "bench-t2", "bench-t3", "bench-t4")
CHUNK = 500_000
LOG_TABLES = ("reply_logs", "automation_logs")


def run(
    rows: int = 10_000_000,
    calls: int = 200,
    flat_seconds: float = 60.0,
    variants: tuple[str, ...] = ("flat", "partitioned"),
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    now = datetime.utcnow().replace(microsecond=0)
    for variant in variants:
        with mariadb_database(f"rf_bench_{variant[:4]}") as url:
            _prepare(url, variant, now)
            started = time.perf_counter()
            _generate(url, rows, now)
            progress(f"retention: {variant}: {rows:,} rows in {time.perf_counter() - started:.0f} s")
            common = {"variant": variant, "log_rows": rows}
            results += _logs_page(url, calls, common)
            results.append(_retention(url, now, variant, flat_seconds, common))
    return results


def _prepare(url: str, variant: str, now: datetime) -> None:
    import sqlalchemy as sa

    from replyflow.db.engine import session_factory
    from replyflow.db.repositories import partitions as parts

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO plans (code, name, price_cents, max_accounts, max_automations, monthly_dm_quota,"
                " log_retention_days, api_requests_per_minute, queue_priority)"
                " VALUES ('bench30', 'bench30', 0, 1, 1, 1, :d, 60, 'default')"
            ),
            {"d": RETENTION_DAYS},
        )
        for tenant in TENANTS:
            conn.execute(
                sa.text(
                    "INSERT INTO tenants (id, name, slug, plan_code, status, created_at, updated_at)"
                    " VALUES (:t, :t, :t, 'bench30', 'active', :now, :now)"
                ),
                {"t": tenant, "now": now},
            )
        if variant == "flat":
            for table in LOG_TABLES:
                conn.execute(sa.text(f"ALTER TABLE {table} REMOVE PARTITIONING"))
    engine.dispose()
    if variant == "partitioned":
        sessions = session_factory(url, 1)
        with sessions() as session:
            start = now.date() - timedelta(days=SPAN_DAYS + 1)
            for table in parts.PARTITIONED:
                first = parts.partitions(session, table)[0].upper
                if first is not None and first > start:
                    parts.split_history(session, table, start)


def _generate(url: str, rows: int, now: datetime) -> None:
    import sqlalchemy as sa

    reply_rows = rows * 6 // 10
    auto_rows = rows - reply_rows
    tenants = ", ".join(f"'{t}'" for t in TENANTS)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    statements = {
        "reply_logs": (
            reply_rows,
            "INSERT INTO reply_logs (tenant_id, account_id, automation_id, outbound_message_id, kind, status,"
            " recipient_id, comment_id, text, error_code, detail, created_at)"
            f" SELECT ELT(1 + seq % 4, {tenants}), 'acct-1', 'auto-1', seq, 'private_reply',"
            " ELT(1 + (seq DIV 4) % 10, 'sent', 'sent', 'sent', 'sent', 'sent', 'sent', 'sent', 'failed',"
            " 'skipped', 'deferred'), CONCAT('7', seq), CONCAT('179', seq),"
            " CONCAT('Hi fan', seq, '! Here is your link: https://example.com/preset-pack'),"
            " IF((seq DIV 4) % 10 = 7, '551', NULL), NULL, :start + INTERVAL (seq * {step}) MICROSECOND"
            " FROM seq_{lo}_to_{hi}",
        ),
        "automation_logs": (
            auto_rows,
            "INSERT INTO automation_logs (tenant_id, account_id, automation_id, event_key, action, reason,"
            " detail, created_at)"
            f" SELECT ELT(1 + seq % 4, {tenants}), 'acct-1', 'auto-1', CONCAT('179', seq),"
            " ELT(1 + seq % 4, 'matched', 'queued', 'sent', 'skipped'), IF(seq % 4 = 3, 'no_match', NULL),"
            " NULL, :start + INTERVAL (seq * {step}) MICROSECOND FROM seq_{lo}_to_{hi}",
        ),
    }
    start = now - timedelta(days=SPAN_DAYS)
    with engine.connect() as conn:
        for count, sql in statements.values():
            step = SPAN_DAYS * 86_400_000_000 // max(1, count)
            for lo in range(1, count + 1, CHUNK):
                hi = min(count, lo + CHUNK - 1)
                conn.execute(sa.text(sql.format(step=step, lo=lo, hi=hi)), {"start": start})
                conn.commit()
        # A verified archive of every expired tenant-day (what the archive job records).
        cutoff = datetime.combine((now - timedelta(days=RETENTION_DAYS)).date(), datetime.min.time())
        for table in LOG_TABLES:
            conn.execute(
                sa.text(
                    "INSERT INTO archive_files (tenant_id, table_name, day, first_id, last_id, row_count,"
                    " object_key, sha256, size_bytes, verified_at)"
                    f" SELECT tenant_id, '{table}', DATE(created_at), MIN(id), MAX(id), COUNT(*),"
                    f" CONCAT(tenant_id, '/', DATE(created_at), '/{table}'), REPEAT('0', 64), 0, :now"
                    f" FROM {table} WHERE created_at < :cutoff GROUP BY tenant_id, DATE(created_at)"
                ),
                {"now": now, "cutoff": cutoff},
            )
        conn.commit()
        for table in LOG_TABLES:
            conn.execute(sa.text(f"ANALYZE TABLE {table}"))
    engine.dispose()


def _logs_page(url: str, calls: int, common: dict[str, Any]) -> list[dict[str, Any]]:
    from replyflow.db.engine import session_factory
    from replyflow.db.repositories import log_queries
    from replyflow.db.repositories.log_queries import Keyset, LogFilter

    sessions = session_factory(url, 1)
    tenant = TENANTS[0]
    with sessions() as session:
        first, _ = log_queries.reply_logs(session, tenant, LogFilter(), None, 50)
    after = Keyset(first[-1].created_at, first[-1].id)
    cases = [
        ("logs page 1 (limit 50)", LogFilter(), None),
        ("logs page 2 (cursor)", LogFilter(), after),
        ("logs page, status=failed", LogFilter(status="failed"), None),
    ]
    rows = []
    for name, flt, cursor in cases:
        samples = []
        with sessions() as session:
            for _ in range(calls):
                started = time.perf_counter()
                page, _more = log_queries.reply_logs(session, tenant, flt, cursor, 50)
                samples.append(ms_since(started))
                assert len(page) == 50
                session.expunge_all()
        rows.append(summarize(f"{name} [{common['variant']}]", samples, **common))
    return rows


def _retention(
    url: str, now: datetime, variant: str, flat_seconds: float, common: dict[str, Any]
) -> dict[str, Any]:
    from replyflow.db.engine import session_factory
    from replyflow.services.jobs.common import Deadline
    from replyflow.services.jobs.retention import run_retention

    sessions = session_factory(url, 2)
    deadline = Deadline(flat_seconds) if variant == "flat" else Deadline.unlimited()
    before = _log_rows(url)
    started = time.perf_counter()
    result = run_retention(sessions, now=now, deadline=deadline)
    seconds = time.perf_counter() - started
    # Counted by the bench, untimed: the job's dropped rows are the partitions' statistics (estimates).
    removed = before - _log_rows(url)
    return {
        "name": f"retention [{variant}]",
        "n": removed,
        "per_second": rate(removed, seconds),
        "seconds": round(seconds, 2),
        "rows_dropped_estimate": int(result.counts["rows_dropped"]),
        "rows_deleted": int(result.counts["rows_deleted"]),
        "partitions_dropped": int(result.counts["partitions_dropped"]),
        "stopped_early": result.stopped_early,
        **common,
    }


def _log_rows(url: str) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        total = sum(int(conn.scalar(sa.text(f"SELECT COUNT(*) FROM {t}")) or 0) for t in LOG_TABLES)
    engine.dispose()
    return total
