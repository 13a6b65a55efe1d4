"""Tenant shards on MariaDB (docs/scaling.md#database-sharding): what routing costs a unit of work,
and how fast ``replyflow shards move`` moves a tenant.

Setup (not timed): two fresh databases migrated with ``upgrade_all``, ``s0`` (also the directory)
and ``s1``; one tenant placed on ``s0`` with ``rows`` ``reply_logs`` rows (bulk ``INSERT ... SELECT``
from the Sequence engine).

Measured:

- ``unit of work``: open a session, count the tenant's templates, commit; ``calls`` times on the plain
  session factory of ``s0`` (before: one database) and through the ``ShardRouter`` with the tenant
  bound (after: placement from its 1-second cache, except the first call);
- ``move``: the whole move with ``settle_seconds=0`` (copy, verify counts and checksums, switch,
  delete the old copy); ``per_second`` = rows moved / wall time, ``paused_s`` the time from the
  start to the switch (the tenant's writes wait that long; the old copy's delete comes after).
  Three moves of the same tenant in one run (same load): ``s0`` -> ``s1`` the way moves ran before
  (rows read and written through SQLAlchemy 1,000 at a time as dicts, one SHA-256 pass in Python per
  side and table, one ``DELETE`` per table; kept here, in ``_legacy_mover``, for this comparison
  only), ``s1`` -> ``s0`` through Python in key-range chunks with the checksums computed by MariaDB
  (the path for shards on separate servers), and ``s0`` -> ``s1`` with ``INSERT ... SELECT`` (both
  shards are schemas of one server here). ``rounds`` times, interleaved, so a change of the
  machine's load reaches every way alike (every other round in reverse order, so each way moves in
  both directions). ``legacy=False`` skips the old way.

``SHARDS_BENCH_TABLE=contacts``: the tenant's ``rows`` are ``contacts`` instead, interleaved by id
with ``SHARDS_BENCH_SPREAD`` (default 1) of another tenant's per row of its own on ``s0`` (and
``rows`` of that other tenant's on ``s1``), as on a shared shard, and the moves compare the table
without its paging index (``ix_contacts_tenant_id`` dropped on both shards and no ``FORCE INDEX``:
before migration 0108) with it (after), both through Python (the path between separate servers).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.stats import summarize
from bench.support import mariadb_database, ms_since, progress, rate

CHUNK = 200_000
OTHER_TENANT = "bench-shards-other-tenant0"  # 26 characters, never a real id
SEED = {
    "reply_logs": (
        "INSERT INTO reply_logs (tenant_id, account_id, automation_id, outbound_message_id, kind, status,"
        " recipient_id, comment_id, text, error_code, detail, created_at)"
        " SELECT :t, 'acct-1', 'auto-1', seq, 'private_reply', 'sent', CONCAT('7', seq), CONCAT('179', seq),"
        " CONCAT('Hi fan', seq, '! Here is your link'), NULL, NULL, NOW() - INTERVAL seq SECOND"
        " FROM seq_{lo}_to_{hi}"
    ),
    # One seq in ``spread + 1`` the moved tenant's, the others the other tenant's (``s0`` only), so
    # their ids interleave.
    "contacts": (
        "INSERT INTO contacts (tenant_id, account_id, igsid, username, last_inbound_at,"
        " last_interaction_at, created_at, updated_at)"
        " SELECT IF(seq % (:spread + 1) = 1 AND NOT :other_only, :t, :o), 'acct-1', CONCAT('7', seq),"
        " CONCAT('fan', seq), NULL, NOW() - INTERVAL seq SECOND, NOW() - INTERVAL seq SECOND, NOW()"
        " FROM seq_{lo}_to_{hi}"
    ),
}


def run(rows: int = 200_000, calls: int = 500, legacy: bool = True, rounds: int = 2) -> list[dict[str, Any]]:
    from contextlib import ExitStack

    from replyflow.db.migrate import upgrade_all

    with ExitStack() as stack:
        urls = {
            name: stack.enter_context(mariadb_database(f"rf_bench_shard_{name}")) for name in ("s0", "s1")
        }
        upgrade_all(urls["s0"], urls)
        table = os.environ.get("SHARDS_BENCH_TABLE", "reply_logs")
        if table not in SEED:
            raise SystemExit(f"SHARDS_BENCH_TABLE: one of {', '.join(SEED)}, not {table!r}")
        router, tenant_id = _tenant_with_rows(urls, rows, table)
        results = _units_of_work(urls["s0"], router, tenant_id, calls)
        ways = _ways(table, legacy)
        # Interleaved (same load), every other round reversed (each way moves in both directions).
        moves = [(n, way) for n in range(1, rounds + 1) for way in (ways if n % 2 else ways[::-1])]
        for number, (round_, (direct, how, indexed)) in enumerate(moves):
            target = ("s1", "s0")[number % 2]
            with _paging_index(router, table, indexed):
                results.append(
                    _move(router, tenant_id, rows, table, target, direct, f"{how}, round {round_}")
                )
        for engine in {*router.shards.values(), router.directory}:
            engine.dispose()
        return results


def _ways(table: str, legacy: bool) -> list[tuple[bool | None, str, bool]]:
    """(direct, how, with the paging index) per way of moving; ``direct`` None: the old mover."""
    if table == "contacts":
        how = "through Python, SQL checksums"
        return [
            (False, f"{how}, no paging index (before)", False),
            (False, f"{how}, paging index (after)", True),
        ]
    ways: list[tuple[bool | None, str, bool]] = [(None, "row by row (before)", True)] if legacy else []
    ways.append((False, "through Python, SQL checksums (after, separate servers)", True))
    ways.append((True, "INSERT ... SELECT, SQL checksums (after, one server)", True))
    return ways


@contextmanager
def _paging_index(router: Any, name: str, indexed: bool) -> Iterator[None]:
    """Without ``indexed``: the table's paging index dropped on every shard and not forced (as before
    migration 0108), created again on the way out (not timed)."""
    from unittest import mock

    from replyflow.db.models import Base
    from replyflow.db.repositories import shard_copy

    table = Base.metadata.tables[name]
    index = next((i for i in table.indexes if i.name == shard_copy.paging_index(table)), None)
    if indexed or index is None:
        yield
        return
    original = shard_copy.paging_index
    for engine in router.shards.values():
        with engine.begin() as conn:
            index.drop(conn)
    try:
        with mock.patch.object(shard_copy, "paging_index", lambda t: None if t is table else original(t)):
            yield
    finally:
        for engine in router.shards.values():
            with engine.begin() as conn:
                index.create(conn)


def _tenant_with_rows(urls: dict[str, str], rows: int, table: str) -> tuple[Any, str]:
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
    started = time.perf_counter()
    if table == "contacts":  # the tenant's rows interleaved with the other's on s0, the other's on s1
        spread = int(os.environ.get("SHARDS_BENCH_SPREAD", "1"))
        params = {"t": tenant_id, "o": OTHER_TENANT, "spread": spread}
        _seed(router.shards["s0"], table, (spread + 1) * rows, {**params, "other_only": 0})
        _seed(router.shards["s1"], table, rows, {**params, "other_only": 1})
    else:
        _seed(router.shards["s0"], table, rows, {"t": tenant_id})
    progress(f"shards: {rows:,} {table} rows of the tenant in {time.perf_counter() - started:.0f} s")
    return router, tenant_id


def _seed(engine: Any, table: str, rows: int, params: dict[str, Any]) -> None:
    import sqlalchemy as sa

    with engine.begin() as conn:
        for lo in range(1, rows + 1, CHUNK):
            conn.execute(sa.text(SEED[table].format(lo=lo, hi=min(rows, lo + CHUNK - 1))), params)


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


def _move(
    router: Any, tenant_id: str, rows: int, table: str, target: str, direct: bool | None, how: str
) -> dict[str, Any]:
    from replyflow.clock import utcnow
    from replyflow.services.shard_moves import ShardMover

    source = router.shard_of(tenant_id)
    mover_class = ShardMover if direct is not None else _legacy_mover()
    reached: dict[str, float] = {}

    def step(state: str) -> None:
        reached.setdefault(state, time.perf_counter() - started)

    started = time.perf_counter()
    report = mover_class(router, now=utcnow, settle_seconds=0, direct=direct, after_step=step).move(
        tenant_id, target
    )
    seconds = time.perf_counter() - started
    assert report.state == "done"
    assert report.rows[table] == rows
    paused = reached["switched"]  # the tenant's writes wait from the start to the switch
    progress(f"shards: move {source} -> {target} {how}: {seconds:.1f} s, paused {paused:.1f} s")
    return {
        "name": f"move {source} -> {target} {how}",
        "n": 1,
        "p50_ms": round(seconds * 1000, 1),
        "rows": sum(report.rows.values()),
        "per_second": rate(sum(report.rows.values()), seconds),
        "paused_s": round(paused, 1),
    }


def _legacy_mover() -> type[Any]:
    """The move's copy, verification and delete as they were before key-range chunks and SQL
    checksums (bench only: the before figure)."""
    import hashlib

    from replyflow.db.repositories import shard_copy
    from replyflow.db.repositories import shard_directory as directory
    from replyflow.db.shards import copy_tenant_mirror, shard_tables
    from replyflow.services.shard_moves import MoveReport, ShardMoveError, ShardMover

    def ordered(table: Any, tenant_id: str) -> Any:
        from sqlalchemy import select

        return select(table).where(table.c.tenant_id == tenant_id).order_by(*table.primary_key.columns)

    def checksum(conn: Any, table: Any, tenant_id: str) -> str:
        digest = hashlib.sha256()
        for part in conn.execute(ordered(table, tenant_id)).partitions(1000):
            for row in part:
                digest.update(repr(tuple(row)).encode())
        return digest.hexdigest()

    def delete_copy(engine: Any, tenant_id: str, keep_tenant: bool) -> None:
        from sqlalchemy import delete

        with engine.begin() as conn:
            for table in reversed(shard_tables()):
                conn.execute(delete(table).where(table.c.tenant_id == tenant_id))
            if not keep_tenant:
                directory.forget_tenant(conn, tenant_id)

    class Legacy(ShardMover):
        def _copy(self, report: MoveReport) -> str:
            from sqlalchemy import insert

            source, target = self._engine(report.source), self._engine(report.target)
            delete_copy(target, report.tenant_id, target is self.router.directory)
            if target is not self.router.directory:
                with self.router.directory.connect() as src, target.begin() as dst:
                    copy_tenant_mirror(src, dst, report.tenant_id)
            for table in shard_tables():
                with source.connect() as src, target.begin() as dst:
                    query = ordered(table, report.tenant_id)
                    result = src.execution_options(yield_per=1000).execute(query).mappings()
                    for part in result.partitions(1000):
                        dst.execute(insert(table), [dict(row) for row in part])
            return "copied"

        def _verify(self, report: MoveReport) -> str:
            source, target = self._engine(report.source), self._engine(report.target)
            with source.connect() as src, target.connect() as dst:
                for table in shard_tables():
                    n = shard_copy.count(src, table, report.tenant_id)
                    report.rows[table.name] = n
                    if n != shard_copy.count(dst, table, report.tenant_id) or checksum(
                        src, table, report.tenant_id
                    ) != checksum(dst, table, report.tenant_id):
                        raise ShardMoveError(f"the copy differs in {table.name}")
            return "verified"

        def _drop(self, report: MoveReport) -> str:
            source = self._engine(report.source)
            with self._engine(report.target).connect() as dst:
                report.rows = {t.name: shard_copy.count(dst, t, report.tenant_id) for t in shard_tables()}
            delete_copy(source, report.tenant_id, source is self.router.directory)
            return "done"

    return Legacy
