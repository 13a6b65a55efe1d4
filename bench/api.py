"""The REST API in-process on the real MariaDB and Redis, through the local gateway without a socket
(``local.api_client``): template.yaml's routes, the authorizer and its policy cache, then the API
function on its own ``ApiDeps``, as on the local stack and API Gateway.

Setup (not timed): a fresh, migrated MariaDB database and an empty Redis database; a tenant from ``POST
/v1/auth/signup`` (its JWT); one Instagram account, a template and three automations inserted for it;
``reply_logs`` rows for it (1,000,000 by default) and for three other tenants (30 % more, sharing the
time span), and as many ``automation_logs`` rows for it, spread over the last 90 days and bulk-inserted
with ``INSERT ... SELECT`` from MariaDB's Sequence engine (``seq_1_to_N``) in chunks, then the
``daily_stats`` rollup the pipeline would have kept for them, then ``ANALYZE TABLE``. The per-tenant API
rate limiter is ``NoRateLimit`` (this measures the API, not the limiter) and the gateway caches the
authorizer's policy like API Gateway does (300 s), so after the first call each request is the API
function alone.

Measured: the wall time of one request, back to back on one thread, and requests/s over the same run:

- ``GET /v1/automations``: a cached read (the list is served from Redis; the first call, which fills
  the cache, is not counted);
- ``GET /v1/logs/replies?limit=50``: uncached, the first page, the page after it (``cursor`` =
  ``next_cursor`` of the first) and a first page filtered by ``status=failed``;
- ``GET /v1/stats`` over 30 days: a cache miss on every call (each call shifts the 30-day window back
  one day, so each is a fresh cache key), and the same window again (a cache hit).
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from bench.stats import summarize
from bench.support import bench_redis, mariadb_database, ms_since, progress, rate

if TYPE_CHECKING:
    from replyflow.wiring.core import Clients


CHUNK = 250_000
OTHER_TENANTS = ("bench-other-a", "bench-other-b", "bench-other-c")
SPAN_DAYS = 90


def _setup_tenant(clients: Clients, tenant_id: str) -> tuple[str, list[str]]:
    """One account, a template and three automations for the tenant; returns (account id, automation ids)."""
    from replyflow.db.engine import session_scope
    from replyflow.db.models import Automation, InstagramAccount, Template

    with session_scope(clients.writer_sessions) as session:
        account = InstagramAccount(
            tenant_id=tenant_id,
            ig_user_id="17841499999990001",
            username="bench.api",
            access_token_encrypted=b"",
        )
        template = Template(tenant_id=tenant_id, name="Link", text="Hi {{username}}! https://example.com")
        session.add_all([account, template])
        session.flush()
        automations = [
            Automation(
                tenant_id=tenant_id,
                account_id=account.id,
                name=f"Comment {word} -> DM",
                trigger="comment",
                match_mode="whole_word",
                keywords=[word],
                actions={"private_reply": {"template_id": template.id}},
                cooldown_seconds=0,
                active=True,
            )
            for word in ("LINK", "PRICE", "GUIDE")
        ]
        session.add_all(automations)
        session.flush()
        return account.id, [a.id for a in automations]


def _bulk(database_url: str, tenant_id: str, account_id: str, automation_ids: list[str], rows: int) -> None:
    import sqlalchemy as sa

    step_s = max(1, SPAN_DAYS * 86400 // rows)
    autos = ", ".join(f"'{a}'" for a in automation_ids)
    others = ", ".join(f"'{t}'" for t in OTHER_TENANTS)
    reply_insert = (
        "INSERT INTO reply_logs (tenant_id, account_id, automation_id, outbound_message_id, kind, status,"
        " recipient_id, comment_id, text, error_code, detail, created_at)"
        " SELECT {tenant}, {account}, ELT(1 + seq % 3, {autos}), seq, 'private_reply',"
        " ELT(1 + seq % 10, 'sent', 'sent', 'sent', 'sent', 'sent', 'sent', 'sent', 'failed', 'skipped',"
        " 'deferred'), CONCAT('7', seq), CONCAT('179', seq),"
        " CONCAT('Hi fan', seq, '! Here is your link: https://example.com/preset-pack'),"
        " IF(seq % 10 = 7, '551', NULL), NULL, :now - INTERVAL (seq * {step}) SECOND"
        " FROM seq_{lo}_to_{hi}"
    )
    automation_insert = (
        "INSERT INTO automation_logs (tenant_id, account_id, automation_id, event_key, action, reason,"
        " detail, created_at)"
        " SELECT :tenant, :account, ELT(1 + seq % 3, {autos}), CONCAT('179', seq),"
        " ELT(1 + seq % 4, 'matched', 'queued', 'sent', 'skipped'), IF(seq % 4 = 3, 'no_match', NULL), NULL,"
        " :now - INTERVAL (seq * {step}) SECOND FROM seq_{lo}_to_{hi}"
    )
    now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            for other in OTHER_TENANTS:
                conn.execute(
                    sa.text(
                        "INSERT INTO tenants (id, name, slug, plan_code, status, created_at, updated_at)"
                        " VALUES (:t, :t, :t, 'pro', 'active', :now, :now)"
                    ),
                    {"t": other, "now": now},
                )
        jobs: list[tuple[str, dict[str, Any]]] = []
        for lo in range(1, rows + 1, CHUNK):
            hi = min(rows, lo + CHUNK - 1)
            jobs.append(
                (
                    reply_insert.format(
                        tenant=":tenant", account=":account", autos=autos, step=step_s, lo=lo, hi=hi
                    ),
                    {"tenant": tenant_id, "account": account_id, "now": now},
                )
            )
            jobs.append(
                (
                    automation_insert.format(autos=autos, step=step_s, lo=lo, hi=hi),
                    {"tenant": tenant_id, "account": account_id, "now": now},
                )
            )
        other_rows = rows * 3 // 10
        for lo in range(1, other_rows + 1, CHUNK):
            hi = min(other_rows, lo + CHUNK - 1)
            jobs.append(
                (
                    reply_insert.format(
                        tenant=f"ELT(1 + seq % 3, {others})",
                        account="'other-account'",
                        autos="'other-automation'",
                        step=SPAN_DAYS * 86400 // max(1, other_rows),
                        lo=lo,
                        hi=hi,
                    ),
                    {"now": now},
                )
            )
        for sql, params in jobs:
            with engine.begin() as conn:
                conn.execute(sa.text(sql), params)
        with engine.begin() as conn:
            # The pipeline keeps daily_stats in step with every automation_logs row it appends; rows
            # bulk-inserted here get the same rollup in one statement.
            conn.execute(
                sa.text(
                    "INSERT INTO daily_stats (tenant_id, day, account_id, automation_id, action, count)"
                    " SELECT tenant_id, DATE(created_at), account_id, COALESCE(automation_id, ''), action,"
                    " COUNT(*) FROM automation_logs GROUP BY 1, 2, 3, 4, 5"
                )
            )
            conn.execute(sa.text("ANALYZE TABLE reply_logs, automation_logs, daily_stats"))
    finally:
        engine.dispose()


def _time_calls(
    gateway: Any, token: str, path: str, query: dict[str, str] | None, calls: int
) -> tuple[list[float], float, int]:
    samples: list[float] = []
    non_200 = 0
    started = time.perf_counter()
    for _ in range(calls):
        t0 = time.perf_counter()
        response = gateway.request("GET", path, token=token, query=query)
        samples.append(ms_since(t0))
        non_200 += response.status != 200
    return samples, time.perf_counter() - started, non_200


def run(log_rows: int = 1_000_000, calls: int = 300, stats_calls: int = 5) -> list[dict[str, Any]]:
    from api.handler import make_handler as make_api_handler
    from authorizer.handler import authenticate
    from authorizer.handler import make_handler as make_authorizer_handler
    from local.api_client import ApiClient, api_gateway
    from replyflow.adapters.api_rate_limiter import NoRateLimit
    from replyflow.db.engine import session_scope
    from replyflow.db.repositories.plans import seed_plans
    from replyflow.services.cache_keys import automations_list_key
    from replyflow.settings import Settings
    from replyflow.wiring.api import build_api, build_authorizer
    from replyflow.wiring.core import Clients

    rows: list[dict[str, Any]] = []
    with mariadb_database("rf_bench_api") as db_url, bench_redis() as redis_url:
        settings = Settings(
            environment="test", database_url=db_url, redis_url=redis_url, access_token_ttl_seconds=3600
        )
        clients = Clients(settings)
        # Counts nothing, but still reads the revocation entries in one round trip, as production does.
        deps = build_api(settings, clients=clients, limiter=NoRateLimit(clients.redis))
        authorizer = build_authorizer(settings, clients=clients)
        with session_scope(clients.writer_sessions) as session:
            seed_plans(session)
        handlers = make_api_handler(lambda: deps), make_authorizer_handler(lambda: authorizer)
        gateway = ApiClient(api_gateway(*handlers), source_ip="10.0.0.7")
        signup = gateway.request(
            "POST",
            "/v1/auth/signup",
            body={
                "email": "bench@example.com",
                "password": "correct horse battery",
                "workspace_name": "Bench",
            },
        )
        if signup.status != 201:
            raise RuntimeError(f"signup failed: {signup.status} {signup.body}")
        token, tenant_id = signup.body["access_token"], signup.body["tenant_id"]
        account_id, automation_ids = _setup_tenant(clients, tenant_id)
        progress(f"api: inserting {log_rows:,} reply_logs + {log_rows:,} automation_logs for the tenant")
        t0 = time.perf_counter()
        _bulk(db_url, tenant_id, account_id, automation_ids, log_rows)
        progress(f"api: rows inserted in {time.perf_counter() - t0:.1f} s; timing requests")
        backing = f"MariaDB (fresh db), Redis {redis_url}"
        common = {"backing": backing, "tenant_reply_logs": log_rows}

        warm = gateway.request("GET", "/v1/automations", token=token)
        if warm.status == 401:
            # The gateway turns any authorizer exception into a 401; show the real one.
            authenticate(authorizer, f"Bearer {token}")
        if warm.status != 200:
            raise RuntimeError(f"GET /v1/automations: {warm.status} {warm.body}")
        cached = clients.cache.get_json(automations_list_key(tenant_id)) is not None
        samples, seconds, bad = _time_calls(gateway, token, "/v1/automations", None, calls)
        rows.append(
            summarize(
                "GET /v1/automations (cached)",
                samples,
                per_second=rate(calls, seconds),
                cache="hit (the list is in the Redis cache)" if cached else "NOT cached",
                non_200=bad,
                **common,
            )
        )

        first = gateway.request("GET", "/v1/logs/replies", token=token, query={"limit": "50"})
        if first.status != 200 or len(first.body["items"]) != 50:
            raise RuntimeError(f"GET /v1/logs/replies: {first.status} {str(first.body)[:300]}")
        cursor = first.body["next_cursor"]
        pages = (
            ("GET /v1/logs/replies?limit=50 (first page)", {"limit": "50"}),
            ("GET /v1/logs/replies?limit=50&cursor= (page 2)", {"limit": "50", "cursor": cursor}),
            ("GET /v1/logs/replies?limit=50&status=failed", {"limit": "50", "status": "failed"}),
        )
        for name, query in pages:
            samples, seconds, bad = _time_calls(gateway, token, "/v1/logs/replies", query, calls)
            rows.append(
                summarize(name, samples, per_second=rate(calls, seconds), cache="none", non_200=bad, **common)
            )

        today = date.today()
        misses: list[float] = []
        miss_s, miss_bad = 0.0, 0
        for shift in range(stats_calls):
            until = today - timedelta(days=shift)
            query = {"since": str(until - timedelta(days=29)), "until": str(until)}
            samples, seconds, bad = _time_calls(gateway, token, "/v1/stats", query, 1)
            misses += samples
            miss_s += seconds
            miss_bad += bad
        rows.append(
            summarize(
                "GET /v1/stats 30 days (cache miss)",
                misses,
                per_second=rate(stats_calls, miss_s),
                cache="miss (a new 30-day window each call)",
                non_200=miss_bad,
                **common,
            )
        )
        query = {"since": str(today - timedelta(days=29)), "until": str(today)}
        samples, seconds, bad = _time_calls(gateway, token, "/v1/stats", query, calls)
        rows.append(
            summarize(
                "GET /v1/stats 30 days (cache hit)",
                samples,
                per_second=rate(calls, seconds),
                cache="hit (same window, 60 s TTL)",
                non_200=bad,
                **common,
            )
        )
    return rows
