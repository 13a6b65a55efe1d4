"""Tenant shards on MariaDB (docs/scaling.md#database-sharding): what routing costs a unit of work,
and how fast ``replyflow shards move`` moves a tenant.

Setup (not timed): two fresh databases migrated with ``upgrade_all``, ``s0`` (also the directory)
and ``s1``; one tenant placed on ``s0`` with ``rows`` ``reply_logs`` rows (bulk ``INSERT ... SELECT``
from the Sequence engine).

Measured:

- ``unit of work``: open a session, count the tenant's templates, commit; ``calls`` times on the plain
  session factory of ``s0`` (before: one database) and through the ``ShardRouter`` with the tenant
  bound (after: placement from its 1-second cache, except the first call);
- ``move``: the whole move ``s0`` -> ``s1`` with ``settle_seconds=0`` (copy, verify counts and
  checksums, switch, delete the old copy); ``per_second`` = rows moved / wall time.
"""

from __future__ import annotations

import time
from typing import Any

from bench.stats import summarize
from bench.support import mariadb_database, ms_since, progress, rate

CHUNK = 200_000


def run(rows: int = 200_000, calls: int = 500) -> list[dict[str, Any]]:
    from contextlib import ExitStack

    from replyflow.db.migrate import upgrade_all

    with ExitStack() as stack:
        urls = {
            name: stack.enter_context(mariadb_database(f"rf_bench_shard_{name}")) for name in ("s0", "s1")
        }
        upgrade_all(urls["s0"], urls)
        router, tenant_id = _tenant_with_logs(urls, rows)
        results = _units_of_work(urls["s0"], router, tenant_id, calls)
        results.append(_move(router, tenant_id, rows))
        for engine in {*router.shards.values(), router.directory}:
            engine.dispose()
        return results


def _tenant_with_logs(urls: dict[str, str], rows: int) -> tuple[Any, str]:
    import sqlalchemy as sa

    from replyflow.db.engine import session_scope
    from replyflow.db.repositories import plans, tenants
    from replyflow.observability import bind_tenant, clear_tenant
    from replyflow.settings import Settings
    from replyflow.wiring.core import Clients

    clients = Clients(Settings(database_url=urls["s0"], database_shard_urls=urls, environment="test"))
    router = clients.shard_router
    assert router is not None
    with session_scope(clients.writer_sessions) as session:
        plans.seed_plans(session)
        tenant_id = tenants.add(session, name="Bench", slug="bench-shards", plan_code="pro").id
    bind_tenant(tenant_id)
    try:
        assert router.current_shard() == "s0"
    finally:
        clear_tenant()
    sql = (
        "INSERT INTO reply_logs (tenant_id, account_id, automation_id, outbound_message_id, kind, status,"
        " recipient_id, comment_id, text, error_code, detail, created_at)"
        " SELECT :t, 'acct-1', 'auto-1', seq, 'private_reply', 'sent', CONCAT('7', seq), CONCAT('179', seq),"
        " CONCAT('Hi fan', seq, '! Here is your link'), NULL, NULL, NOW() - INTERVAL seq SECOND"
        " FROM seq_{lo}_to_{hi}"
    )
    started = time.perf_counter()
    with router.shards["s0"].begin() as conn:
        for lo in range(1, rows + 1, CHUNK):
            conn.execute(sa.text(sql.format(lo=lo, hi=min(rows, lo + CHUNK - 1))), {"t": tenant_id})
    progress(f"shards: {rows:,} log rows in {time.perf_counter() - started:.0f} s")
    return router, tenant_id


def _units_of_work(url: str, router: Any, tenant_id: str, calls: int) -> list[dict[str, Any]]:
    from replyflow.db.engine import session_factory, session_scope
    from replyflow.db.repositories import templates
    from replyflow.observability import bind_tenant, clear_tenant

    def timed(sessions: Any) -> list[float]:
        samples = []
        for _ in range(calls):
            start = time.perf_counter()
            with session_scope(sessions) as session:
                templates.list_for_tenant(session, tenant_id)
            samples.append(ms_since(start))
        return samples

    plain = timed(session_factory(url))
    bind_tenant(tenant_id)
    try:
        routed = timed(router)
    finally:
        clear_tenant()
    return [
        summarize("unit of work, one database (before)", plain),
        summarize("unit of work, routed to the tenant's shard (after)", routed),
    ]


def _move(router: Any, tenant_id: str, rows: int) -> dict[str, Any]:
    from replyflow.clock import utcnow
    from replyflow.services.shard_moves import ShardMover

    started = time.perf_counter()
    report = ShardMover(router, now=utcnow, settle_seconds=0).move(tenant_id, "s1")
    seconds = time.perf_counter() - started
    assert report.state == "done"
    assert report.rows["reply_logs"] == rows
    return {
        "name": "move s0 -> s1 (copy, verify, switch, delete)",
        "n": 1,
        "p50_ms": round(seconds * 1000, 1),
        "rows": sum(report.rows.values()),
        "per_second": rate(sum(report.rows.values()), seconds),
    }
