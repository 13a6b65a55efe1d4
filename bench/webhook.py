"""Webhook intake in-process: ``webhook.handler.lambda_handler`` on signed API Gateway proxy events.

Measured: the wall time of one handler call (verify ``X-Hub-Signature-256``, parse, resolve the account
route from the cache, build the ``EventMessage`` and publish it, flush the EMF metrics to a silenced
stdout), one comment per call with a unique comment id, calls made back to back on one thread; and
calls/s over the same calls. The events are built and signed before timing starts. The queue publisher
is an in-memory collector (no SQS), the database a temp SQLite file holding the demo tenant. The
account route is warm (the first call loads it from the database and is not counted), so no call here
touches the database: the rows differ only in where the route cache lives, in-process fakeredis
(``REDIS_URL`` unset, the local stack's default) or a real redis-server of its own on loopback (a
network round trip per call, as in AWS with ElastiCache).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.stats import summarize
from bench.support import (
    APP_SECRET,
    BENCH_CONTEXT,
    CollectingPublisher,
    bench_redis,
    comment_webhook,
    dispose_clients,
    ms_since,
    progress,
    proxy_event,
    rate,
)

if TYPE_CHECKING:
    from replyflow.wiring.core import Clients


def _seed(clients: Clients) -> str:
    from replyflow.clock import utcnow
    from replyflow.db.engine import session_scope
    from replyflow.db.migrate import upgrade
    from replyflow.services.demo_seed import seed_demo

    upgrade(clients.settings.database_url)
    with session_scope(clients.writer_sessions) as session:
        return seed_demo(session, clients.cipher, access_token="IGAA-bench-token", now=utcnow()).ig_user_id


def _measure(name: str, database_url: str, redis_url: str | None, calls: int) -> dict[str, Any]:
    from replyflow.settings import Settings
    from replyflow.wiring.pipeline import build_pipeline
    from webhook.handler import make_handler

    collector = CollectingPublisher()
    settings = Settings(
        environment="test", database_url=database_url, redis_url=redis_url, instagram_app_secret=APP_SECRET
    )
    deps = build_pipeline(settings, publisher=collector)
    lambda_handler = make_handler(lambda: deps)
    try:
        ig_user_id = _seed(deps.clients)
        events = [proxy_event(comment_webhook(ig_user_id), APP_SECRET) for _ in range(calls + 1)]
        warm = lambda_handler(events[0], BENCH_CONTEXT)
        if warm["statusCode"] != 200 or '"received": 1' not in warm["body"]:
            raise RuntimeError(f"the webhook did not accept the warm-up event: {warm}")
        samples: list[float] = []
        errors = 0
        started = time.perf_counter()
        for event in events[1:]:
            t0 = time.perf_counter()
            response = lambda_handler(event, BENCH_CONTEXT)
            samples.append(ms_since(t0))
            errors += response["statusCode"] != 200
        elapsed = time.perf_counter() - started
        enqueued = len(collector.take("events-")) - 1
    finally:
        dispose_clients(deps.clients)
    return summarize(
        name,
        samples,
        per_second=rate(calls, elapsed),
        enqueued=enqueued,
        errors=errors,
        route_cache="fakeredis (in-process)" if redis_url is None else redis_url,
        database="SQLite (temp file, not touched once warm)",
    )


def run(calls: int = 3000) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="rf-bench-webhook-") as tmp:
        progress(f"webhook: {calls} calls, route cache in fakeredis")
        url = f"sqlite:///{Path(tmp) / 'webhook.db'}"
        rows.append(_measure("webhook, cache fakeredis", url, None, calls))
        with bench_redis() as redis_url:
            progress(f"webhook: {calls} calls, route cache in Redis {redis_url}")
            rows.append(_measure("webhook, cache real Redis", url, redis_url, calls))
    return rows
