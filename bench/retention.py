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
  the page after it, page ``DEEP_PAGE`` and ``status=failed``, ``automation_logs`` first pages
  unfiltered and ``action=skipped``, ``calls`` times each, before retention;
- ``retention``: ``run_retention`` with the archive required. Flat: stopped by a ``flat_seconds``
  deadline (chunked deletes at a steady rate; the rest would take rows / rate); partitioned: to the
  end. ``per_second`` = rows removed / wall time: the effective rate, rows removed counted exactly by
  the bench (``COUNT(*)`` before and after, untimed; the job's own count of dropped rows is the
  partitions' statistics, an estimate, shown as ``rows_dropped_estimate``). Partitioned, also the
  job's ``read_s`` (the drop decisions' reads), ``drop_s`` (the slowest table's ``ALTER TABLE ...
  DROP PARTITION``, the tables' statements run at the same time) and ``partitions_s`` (both, end to
  end); the rest of ``seconds`` is the chunked walk, the claims and the flow runs.
- every logs page's query plans (``EXPLAIN PARTITIONS`` of the statements one call runs): access
  type, index, rows estimate, partitions opened and ``Extra``, in the row's ``plan``, after the index
  entries one call read (the session's ``Handler_read_*`` counters): a page of 50 that reads about
  50 entries is an index range read of exactly the page.

Sizes: ``RETENTION_BENCH_ROWS`` (e.g. ``10000000``) overrides ``rows`` and ``RETENTION_BENCH_VARIANTS``
(e.g. ``partitioned``) the variants, so ``RETENTION_BENCH_ROWS=10000000
RETENTION_BENCH_VARIANTS=partitioned make bench BENCH_ARGS="--only retention"`` is issue 15's 10M
run (generating the rows is one ``INSERT ... SELECT`` per 500k rows, the two tables at the same time
on a connection each: a few minutes on this 2-core machine) while the default suite stays at its
size.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from bench.stats import summarize
from bench.support import mariadb_database, ms_since, progress, rate

SPAN_DAYS = 60
RETENTION_DAYS = 30
TENANTS = ("bench-t1", "bench-t2", "bench-t3", "bench-t4")
CHUNK = 500_000
LOG_TABLES = ("reply_logs", "automation_logs")
DEEP_PAGE = 40  # a cursor page deep into the newest day (each page reads only its own rows)


def run(
    rows: int = 10_000_000,
    calls: int = 200,
    flat_seconds: float = 60.0,
    variants: tuple[str, ...] = ("flat", "partitioned"),
) -> list[dict[str, Any]]:
    rows = int(os.environ.get("RETENTION_BENCH_ROWS", rows))
    chosen = os.environ.get("RETENTION_BENCH_VARIANTS")
    if chosen:
        variants = tuple(v.strip() for v in chosen.split(",") if v.strip())
    results: list[dict[str, Any]] = []
    now = datetime.utcnow().replace(microsecond=0)
    for variant in variants:
        with mariadb_database(f"rf_bench_{variant[:4]}") as url:
            _prepare(url, variant, now)
            started = time.perf_counter()
            _generate(url, rows, now)
            progress(f"retention: {variant}: {rows:,} rows in {time.perf_counter() - started:.0f} s")
            common = {
                "variant": variant,
                "log_rows": rows,
                "generate_s": round(time.perf_counter() - started),
            }
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
    """The rows, the two tables at the same time (a connection each; one ``INSERT ... SELECT`` from the
    Sequence engine per ``CHUNK`` rows, in time order, so every index grows at its end), then the
    archive's records and fresh statistics."""
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
            " ELT(1 + (seq DIV 4) % 4, 'matched', 'queued', 'sent', 'skipped'),"
            " IF((seq DIV 4) % 4 = 3, 'no_match', NULL),"
            " NULL, :start + INTERVAL (seq * {step}) MICROSECOND FROM seq_{lo}_to_{hi}",
        ),
    }
    start = now - timedelta(days=SPAN_DAYS)

    def fill(count: int, sql: str) -> None:
        step = SPAN_DAYS * 86_400_000_000 // max(1, count)
        with engine.connect() as conn:
            for lo in range(1, count + 1, CHUNK):
                hi = min(count, lo + CHUNK - 1)
                conn.execute(sa.text(sql.format(step=step, lo=lo, hi=hi)), {"start": start})
                conn.commit()

    with ThreadPoolExecutor(max_workers=len(statements)) as pool:
        for done in [pool.submit(fill, count, sql) for count, sql in statements.values()]:
            done.result()
    with engine.connect() as conn:
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
        deep = after
        for _ in range(DEEP_PAGE - 2):  # the cursor of the DEEP_PAGE-th page
            page, _ = log_queries.reply_logs(session, tenant, LogFilter(), deep, 50)
            deep = Keyset(page[-1].created_at, page[-1].id)
    reply, auto = log_queries.reply_logs, log_queries.automation_logs
    cases: list[tuple[str, Callable[..., tuple[list[Any], bool]], LogFilter, Keyset | None]] = [
        ("logs page 1 (limit 50)", reply, LogFilter(), None),
        ("logs page 2 (cursor)", reply, LogFilter(), after),
        (f"logs page {DEEP_PAGE} (cursor)", reply, LogFilter(), deep),
        ("logs page, status=failed", reply, LogFilter(status="failed"), None),
        ("automation logs page 1", auto, LogFilter(), None),
        ("automation logs page, action=skipped", auto, LogFilter(action="skipped"), None),
    ]
    rows = []
    for name, query, flt, cursor in cases:
        samples = []
        with sessions() as session:
            plan = _plans(session, lambda s, q=query, f=flt, c=cursor: q(s, tenant, f, c, 50))
            for _ in range(calls):
                started = time.perf_counter()
                page, _more = query(session, tenant, flt, cursor, 50)
                samples.append(ms_since(started))
                assert len(page) == 50
                session.expunge_all()
        load = round(os.getloadavg()[0], 1)
        rows.append(summarize(f"{name} [{common['variant']}]", samples, load=load, plan=plan, **common))
    return rows


def _plans(session: Any, call: Any) -> str:
    """The plans of the statements one ``call(session)`` runs: per statement, access type, index, rows
    estimate, the number of partitions opened and ``Extra`` (MariaDB's ``EXPLAIN PARTITIONS``)."""
    import sqlalchemy as sa

    statements: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    bind = session.get_bind()
    before = _index_reads(session)
    sa.event.listen(bind, "before_cursor_execute", record)
    try:
        call(session)
    finally:
        sa.event.remove(bind, "before_cursor_execute", record)
    reads = _index_reads(session) - before
    session.expunge_all()
    plans = []
    for statement, parameters in statements:
        for row in session.connection().exec_driver_sql("EXPLAIN PARTITIONS " + statement, parameters):
            r = row._mapping
            opened = len(str(r["partitions"]).split(",")) if r["partitions"] else 0
            plans.append(f"{r['type']} {r['key']} rows={r['rows']} parts={opened} {r['Extra'] or ''}".strip())
    return f"index entries read={reads}: " + " | ".join(plans)


def _index_reads(session: Any) -> int:
    """The session's index entries read so far (``Handler_read_key/first/last/next/prev``; not
    ``rnd_next``, which ``SHOW STATUS`` itself moves)."""
    import sqlalchemy as sa

    names = (
        "Handler_read_key",
        "Handler_read_first",
        "Handler_read_last",
        "Handler_read_next",
        "Handler_read_prev",
    )
    rows = session.execute(sa.text("SHOW SESSION STATUS LIKE 'Handler_read%'")).all()
    return sum(int(value) for name, value in rows if name in names)


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
    timings = result.details.get("partition_seconds", {})
    return {
        "name": f"retention [{variant}]",
        "n": removed,
        "per_second": rate(removed, seconds),
        "seconds": round(seconds, 2),
        "rows_dropped_estimate": int(result.counts["rows_dropped"]),
        "rows_deleted": int(result.counts["rows_deleted"]),
        "partitions_dropped": int(result.counts["partitions_dropped"]),
        "read_s": timings.get("read"),
        "drop_s": timings.get("drop_longest"),
        "partitions_s": timings.get("total"),
        "load": round(os.getloadavg()[0], 1),
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
